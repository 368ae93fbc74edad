package protobuf

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// A minimal reader of google.protobuf.FileDescriptorSet, enough to map
// record fields onto a user's message by name. It reads the descriptor
// with protowire so that the plugin does not link the protobuf runtime.

// Field types (google.protobuf.FieldDescriptorProto.Type).
const (
	tDouble   = 1
	tFloat    = 2
	tInt64    = 3
	tUint64   = 4
	tInt32    = 5
	tFixed64  = 6
	tFixed32  = 7
	tBool     = 8
	tString   = 9
	tMessage  = 11
	tBytes    = 12
	tUint32   = 13
	tEnum     = 14
	tSfixed32 = 15
	tSfixed64 = 16
	tSint32   = 17
	tSint64   = 18
)

const labelRepeated = 3

type fieldDesc struct {
	name     string
	number   protowire.Number
	typ      int
	label    int
	typeName string // fully qualified, with a leading dot
}

type messageDesc struct {
	fullName string
	fields   []fieldDesc
}

// parseDescriptorSet returns every message of the set by its fully
// qualified name (without a leading dot).
func parseDescriptorSet(b []byte) (map[string]*messageDesc, error) {
	msgs := map[string]*messageDesc{}
	err := eachField(b, func(num protowire.Number, v []byte) error {
		if num != 1 { // file
			return nil
		}
		var pkg string
		var types [][]byte
		if err := eachField(v, func(num protowire.Number, v []byte) error {
			switch num {
			case 2:
				pkg = string(v)
			case 4:
				types = append(types, v)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, t := range types {
			if err := parseMessage(t, pkg, msgs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("schema is not a FileDescriptorSet: %w", err)
	}
	return msgs, nil
}

func parseMessage(b []byte, scope string, msgs map[string]*messageDesc) error {
	m := &messageDesc{}
	var nested [][]byte
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			m.fullName = string(v)
		case 2:
			f, err := parseField(v)
			if err != nil {
				return err
			}
			m.fields = append(m.fields, f)
		case 3:
			nested = append(nested, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if scope != "" {
		m.fullName = scope + "." + m.fullName
	}
	msgs[m.fullName] = m
	for _, n := range nested {
		if err := parseMessage(n, m.fullName, msgs); err != nil {
			return err
		}
	}
	return nil
}

func parseField(b []byte) (fieldDesc, error) {
	var f fieldDesc
	err := eachFieldAll(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case 1:
			f.name = string(v)
		case 3:
			f.number = protowire.Number(x)
		case 4:
			f.label = int(x)
		case 5:
			f.typ = int(x)
		case 6:
			f.typeName = string(v)
		}
		return nil
	})
	return f, err
}

// eachField calls fn for each length-delimited field of a message.
func eachField(b []byte, fn func(num protowire.Number, v []byte) error) error {
	return eachFieldAll(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ == protowire.BytesType {
			return fn(num, v)
		}
		return nil
	})
}

func eachFieldAll(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// isStringMap reports whether typeName is a map<string, string> entry.
func isStringMap(msgs map[string]*messageDesc, typeName string) bool {
	m, ok := msgs[strings.TrimPrefix(typeName, ".")]
	if !ok || len(m.fields) != 2 || !strings.HasSuffix(m.fullName, "Entry") {
		return false
	}
	for _, f := range m.fields {
		if f.typ != tString || (f.number != 1 && f.number != 2) {
			return false
		}
	}
	return true
}
