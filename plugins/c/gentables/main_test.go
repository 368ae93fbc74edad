package main

import (
	"bytes"
	"os"
	"testing"
)

// TestTablesAreGenerated: the committed plugins/c/tables.h is what
// Generate writes with the Go the tests run on (its strconv.IsPrint, in
// particular, follows Go's Unicode version): make c-tables rewrites it.
func TestTablesAreGenerated(t *testing.T) {
	committed, err := os.ReadFile("../tables.h")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, Generate()) {
		t.Fatal("plugins/c/tables.h is not what gentables writes: run make c-tables, then make c-plugins, and commit both")
	}
}
