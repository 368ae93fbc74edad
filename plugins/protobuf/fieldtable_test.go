package protobuf

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestFieldTable: every key is found with its field, keys that share
// length, first and last byte (so their slots collide) included, and keys
// not in the table, the empty one among them, are not found; tables of
// every size from empty to several hundred keys.
func TestFieldTable(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 64, 300} {
		fields := map[string]target{}
		for i := range n {
			// "k0x", "k1x", ...: same length and ends within each decade.
			fields[fmt.Sprintf("k%dx", i)] = target{name: fmt.Sprint(i), num: protowire.Number(1 + i)}
		}
		if n > 0 {
			fields[""] = target{name: "empty", num: 999}
		}
		ft := newFieldTable(fields)
		for k, want := range fields {
			got, ok := ft.lookup([]byte(k))
			if !ok || got != want {
				t.Fatalf("%d keys: lookup(%q) = %v %v, want %v", n, k, got, ok, want)
			}
		}
		for _, k := range []string{"k", "kx", "x", "k00x", fmt.Sprintf("k%dx", n), "k1y"} {
			if _, ok := fields[k]; ok {
				continue
			}
			if got, ok := ft.lookup([]byte(k)); ok {
				t.Fatalf("%d keys: lookup(%q) found %v", n, k, got)
			}
		}
		if n == 0 {
			if _, ok := ft.lookup(nil); ok {
				t.Fatal("the empty table found the empty key")
			}
		}
	}
}
