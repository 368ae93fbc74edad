package config

import (
	"fmt"
	"math/big"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Each block's attributes are declared once, in a table of attrs: the
// name, whether it is required, and the decoder that reads its value into
// the field it belongs to, checking it. The block's schema is derived
// from the table (attrs.schema), and decoding runs the table
// (attrs.decode), so a name, its field and its rules cannot drift apart.
// Defaults live in one place too: a SetDefaults method, or the value the
// field holds before decoding.
//
// A decoder reports a bad value at the value (file:line:col of the
// expression), naming the attribute, and leaves its field unset.

// attr is one attribute of a block.
type attr struct {
	name     string
	required bool
	decode   func(a *hcl.Attribute) hcl.Diagnostics
}

type attrs []attr

// schema is the block schema the table declares, with the nested blocks.
func (as attrs) schema(blocks ...hcl.BlockHeaderSchema) *hcl.BodySchema {
	s := &hcl.BodySchema{Blocks: blocks}
	for _, a := range as {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a.name, Required: a.required})
	}
	return s
}

// decode runs each present attribute's decoder.
func (as attrs) decode(content *hcl.BodyContent) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, a := range as {
		if at, ok := content.Attributes[a.name]; ok {
			diags = append(diags, a.decode(at)...)
		}
	}
	return diags
}

// content decodes body against the table and the nested blocks. It
// returns no content when the body's shape is wrong (an unknown or
// missing attribute, a block of a type not declared).
func (as attrs) content(body hcl.Body, blocks ...hcl.BlockHeaderSchema) (*hcl.BodyContent, hcl.Diagnostics) {
	content, diags := body.Content(as.schema(blocks...))
	if diags.HasErrors() {
		return nil, diags
	}
	return content, append(diags, as.decode(content)...)
}

// lenient is content that goes on after shape errors: it decodes the
// attributes and returns the blocks that are well formed, so that one
// mistake does not hide the others.
func (as attrs) lenient(body hcl.Body, blocks ...hcl.BlockHeaderSchema) (*hcl.BodyContent, hcl.Diagnostics) {
	content, diags := body.Content(as.schema(blocks...))
	return content, append(diags, as.decode(content)...)
}

// valueError is a diagnostic at an attribute's value.
func valueError(a *hcl.Attribute, summary, detail string, args ...any) hcl.Diagnostics {
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: a.Expr.Range().Ptr()}}
}

// into decodes the value as target's Go type, then runs the checks on it;
// a check returns a diagnostic's summary and detail, or "" when the value
// is good.
func into[T any](target *T, checks ...func(name string, v T) (summary, detail string)) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		var v T
		if d := decodeExpr(a.Expr, &v); d.HasErrors() {
			return d
		}
		for _, c := range checks {
			if summary, detail := c(a.Name, v); summary != "" {
				return valueError(a, summary, "%s", detail)
			}
		}
		*target = v
		return nil
	}
}

// between checks that an integer is in [lo, hi], in the worker blocks'
// words.
func between(lo, hi int) func(string, int) (string, string) {
	return func(name string, n int) (string, string) {
		if n < lo || n > hi {
			return "Value out of range", fmt.Sprintf("%s = %d must be between %d and %d.", name, n, lo, hi)
		}
		return "", ""
	}
}

// fromTo checks that an integer is in [lo, hi], in the server block's
// words.
func fromTo(lo, hi int) func(string, int) (string, string) {
	return func(name string, n int) (string, string) {
		if n < lo || n > hi {
			return "Value out of range", fmt.Sprintf("%s = %d; it must be from %d to %d.", name, n, lo, hi)
		}
		return "", ""
	}
}

// oneOf checks that a string is one of values; want says so to the user.
func oneOf(summary, want string, values ...string) func(string, string) (string, string) {
	return func(name, s string) (string, string) {
		for _, v := range values {
			if s == v {
				return "", ""
			}
		}
		return summary, fmt.Sprintf("%s = %q; use %s.", name, s, want)
	}
}

// path decodes a file or directory name, made absolute against baseDir.
func path(target *string, baseDir string) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		var s string
		if d := decodeExpr(a.Expr, &s); d.HasErrors() {
			return d
		}
		if s != "" && !filepath.IsAbs(s) {
			s = filepath.Join(baseDir, s)
		}
		*target = s
		return nil
	}
}

// duration decodes a duration string such as "1m30s"; ok says whether
// the value is allowed, and bad words the diagnostic's detail for the
// text the user wrote.
func duration(target *time.Duration, ok func(time.Duration) bool, bad func(name, s string) string) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		var s string
		if d := decodeExpr(a.Expr, &s); d.HasErrors() {
			return d
		}
		v, err := time.ParseDuration(s)
		if err != nil || !ok(v) {
			return valueError(a, "Invalid duration", "%s", bad(a.Name, s))
		}
		*target = v
		return nil
	}
}

// positiveDuration is duration for any duration above zero.
func positiveDuration(target *time.Duration) func(*hcl.Attribute) hcl.Diagnostics {
	return duration(target, func(d time.Duration) bool { return d > 0 }, func(name, s string) string {
		return fmt.Sprintf("%s = %q is not a positive duration such as \"500ms\" or \"1m30s\".", name, s)
	})
}

// size decodes a size: a number of bytes, or a string that parseSize
// reads ("64MiB"). check, when set, refuses a size by returning the
// diagnostic's summary and detail.
func size[T int | int64 | uint64](target *T, check func(name string, n uint64) (summary, detail string)) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		n, d := sizeValue(a)
		if d.HasErrors() {
			return d
		}
		if check != nil {
			if summary, detail := check(a.Name, n); summary != "" {
				return valueError(a, summary, "%s", detail)
			}
		}
		*target = T(min(n, 1<<62))
		return nil
	}
}

// sizeValue reads a size attribute's value.
func sizeValue(a *hcl.Attribute) (uint64, hcl.Diagnostics) {
	v, d := a.Expr.Value(evalContext)
	if d.HasErrors() {
		return 0, d
	}
	bad := func(what string) (uint64, hcl.Diagnostics) {
		return 0, valueError(a, "Invalid size", "%s is %s; give a number of bytes or a size such as \"64MiB\" (units B, KiB, MiB, GiB, TiB).", a.Name, what)
	}
	switch {
	case v.IsNull() || !v.IsKnown():
		return bad("not set")
	case v.Type() == cty.Number:
		bf := v.AsBigFloat()
		n, _ := bf.Uint64()
		if bf.Sign() < 0 || !bf.IsInt() || bf.Cmp(new(big.Float).SetUint64(1<<63-1)) > 0 {
			return bad(fmt.Sprintf("%s, not a whole number of bytes that fits in 63 bits", bf.Text('g', 20)))
		}
		return n, nil
	case v.Type() == cty.String:
		n, err := parseSize(v.AsString())
		if err != nil {
			return bad(fmt.Sprintf("%q, %v", v.AsString(), err))
		}
		return n, nil
	}
	return bad("a " + v.Type().FriendlyName())
}

// oneOnly reports a second block of a type allowed once (in says where,
// when not at the top level); single remembers the first of each type.
func oneOnly(single map[string]*hcl.Block, blk *hcl.Block, in string) hcl.Diagnostics {
	if _, dup := single[blk.Type]; dup {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Duplicate " + blk.Type + " block",
			Detail: fmt.Sprintf("Only one %s block is allowed%s.", blk.Type, in), Subject: blk.DefRange.Ptr()}}
	}
	single[blk.Type] = blk
	return nil
}
