package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGCTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.log")
	write := func(s string) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- a file in the test's own temp dir
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	write("==> Vault server started!\n" +
		"gc 1 @0.010s 1%: 0.010+1.0+0.020 ms clock, 0.020+0.5/1.5/2.0+0.040 ms cpu, 4->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P\n" +
		// A plugin's line, relayed through Vault's logger: not Vault's collector.
		"2026-12-02T21:00:00.000Z [DEBUG] secrets.cryptokeys: gc 9 @1.0s 0%: 0.1+0.1+0.1 ms clock, 9+9/9/9+9 ms cpu, 1->1->1 MB\n" +
		"gc 2 @0.500s 1%: 0.010+2.0+0.020 ms cpu")
	g := NewGCTrace(path)
	cpu, cycles, err := g.Read()
	if err != nil {
		t.Fatal(err)
	}
	// The second cycle's line is not finished yet.
	if want := 4060 * time.Microsecond; cycles != 1 || cpu != want {
		t.Fatalf("after one line: %d cycles, %v; want 1, %v", cycles, cpu, want)
	}
	write(", 8->8->2 MB\n")
	cpu, cycles, err = g.Read()
	if err != nil {
		t.Fatal(err)
	}
	if want := (4060 + 2030) * time.Microsecond; cycles != 2 || cpu != want {
		t.Fatalf("after two lines: %d cycles, %v; want 2, %v", cycles, cpu, want)
	}
}
