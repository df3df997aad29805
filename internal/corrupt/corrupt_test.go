package corrupt

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

var errKind = Kind("test: corrupt thing")

func TestKindMatchesAny(t *testing.T) {
	err := fmt.Errorf("%w: detail", errKind)
	if !errors.Is(err, ErrAny) || !errors.Is(err, errKind) {
		t.Fatalf("%v is not corruption of its kind", err)
	}
	if errors.Is(io.ErrUnexpectedEOF, ErrAny) || errors.Is(fmt.Errorf("read: %w", io.EOF), ErrAny) {
		t.Fatal("a device error counts as corruption")
	}
	if _, ok := LocationOf(err); ok {
		t.Fatal("a location without Errorf or Locate")
	}
}

func TestLocate(t *testing.T) {
	err := Errorf(errKind, Location{Block: 7}, "bad magic %x", 0x12)
	if got := err.Error(); got != "test: corrupt thing: bad magic 12 (at virtual block 7)" {
		t.Fatalf("message %q", got)
	}
	err2 := Locate(err, Location{Addr: 4096, Block: 9, Ino: 3, Off: 0, HasOff: true})
	at, ok := LocationOf(err2)
	if !ok || at != (Location{Addr: 4096, Block: 7, Ino: 3, Off: 0, HasOff: true}) {
		t.Fatalf("location %+v %v: the known block must stay, the rest be added", at, ok)
	}
	if got := err2.Error(); got != "test: corrupt thing: bad magic 12 (at device byte 4096, virtual block 7, inode 3, offset 0)" {
		t.Fatalf("message %q", got)
	}
	if at, _ := LocationOf(err); at != (Location{Block: 7}) {
		t.Fatalf("Locate changed the error it was given: %+v", at)
	}
	// Wrapped with context on the way up: the context stays, the new
	// fields are added once.
	wrapped := fmt.Errorf("reading node: %w", err)
	err3 := Locate(wrapped, Location{Addr: 8192, Block: 1})
	if got := err3.Error(); got != "reading node: test: corrupt thing: bad magic 12 (at virtual block 7) (at device byte 8192)" {
		t.Fatalf("message %q", got)
	}
	if at, _ := LocationOf(err3); at != (Location{Addr: 8192, Block: 7}) {
		t.Fatalf("location %+v", at)
	}
	if !errors.Is(err3, errKind) || !errors.Is(err3, ErrAny) {
		t.Fatal("Locate lost the kind")
	}
	// A corruption without a location gets one; other errors pass.
	plain := fmt.Errorf("%w: short", errKind)
	if at, ok := LocationOf(Locate(plain, Location{Ino: 5})); !ok || at.Ino != 5 {
		t.Fatalf("location %+v %v", at, ok)
	}
	if got := Locate(io.EOF, Location{Ino: 5}); got != io.EOF {
		t.Fatalf("a device error became %v", got)
	}
	if Locate(nil, Location{Ino: 5}) != nil {
		t.Fatal("nil became an error")
	}
}
