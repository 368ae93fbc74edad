package config

import (
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// The functions a configuration may call, so that one file serves every
// machine (a network transport's sender must differ per host):
//
//	sender = hostname()                   # this machine's name
//	token  = env("LOGTK_TOKEN")           # an error names the variable if it is unset
//	dir    = env("LOGS", "/var/log/app")  # ... unless a default is given
//	path   = "${env("HOME")}/logs"        # inside a string
//
// They are evaluated once, when the configuration is loaded (and again at
// each reload).
var evalContext = &hcl.EvalContext{Functions: map[string]function.Function{
	"env":      envFunc,
	"hostname": hostnameFunc,
}}

var envFunc = function.New(&function.Spec{
	Description: "The value of an environment variable; an error if it is unset, unless a default is given.",
	Params:      []function.Parameter{{Name: "name", Type: cty.String}},
	VarParam:    &function.Parameter{Name: "default", Type: cty.String},
	Type:        function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		name := args[0].AsString()
		if len(args) > 2 {
			return cty.NilVal, fmt.Errorf("env takes a name and at most one default, not %d arguments", len(args))
		}
		if v, ok := os.LookupEnv(name); ok {
			return cty.StringVal(v), nil
		}
		if len(args) == 2 {
			return args[1], nil
		}
		return cty.NilVal, fmt.Errorf("the environment variable %s is not set; set it, or give a default: env(%q, \"...\")", name, name)
	},
})

var hostnameFunc = function.New(&function.Spec{
	Description: "This machine's host name.",
	Type:        function.StaticReturnType(cty.String),
	Impl: func([]cty.Value, cty.Type) (cty.Value, error) {
		h, err := os.Hostname()
		if err != nil {
			return cty.NilVal, fmt.Errorf("the host name cannot be read: %w", err)
		}
		return cty.StringVal(h), nil
	},
})

// decodeExpr decodes an expression into target as gohcl.DecodeExpression
// does, with the configuration's functions. A value that cannot be
// evaluated (an unset variable) is reported once, not again as a value of
// the wrong type.
func decodeExpr(expr hcl.Expression, target any) hcl.Diagnostics {
	if _, d := expr.Value(evalContext); d.HasErrors() {
		return d
	}
	return gohcl.DecodeExpression(expr, evalContext, target)
}
