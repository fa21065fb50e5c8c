package vaulttest

import (
	"debug/buildinfo"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The harness's promises, checked against the real binaries: the server
// answers on loopback with the plugin usable, nothing lands in HOME, and
// Stop leaves no process behind.

func TestLaunchMountStop(t *testing.T) {
	if os.Getenv(SkipEnv) == "1" {
		t.Skip(SkipEnv + "=1")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	s, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)

	if !strings.HasPrefix(s.Addr, "http://127.0.0.1:") {
		t.Fatalf("Addr %s is not loopback", s.Addr)
	}
	if len(s.PluginSHA256) != 64 || !strings.HasPrefix(s.PluginVersion, "v") {
		t.Fatalf("plugin sha256 %q version %q", s.PluginSHA256, s.PluginVersion)
	}
	mount := s.Mount(t)
	if out := s.MustCLI(t, "read", "-field=version", mount+"/info"); strings.TrimSpace(out) != s.PluginVersion {
		t.Fatalf("%s/info version %q, want %s", mount, out, s.PluginVersion)
	}
	s.MustCLI(t, "write", mount+"/roles/r", "environment=dev")
	if len(s.MountStorage(t, mount)) == 0 {
		t.Fatal("MountStorage saw nothing after a role write")
	}
	if out, err := s.CLI(t, "read", mount+"/nope"); err == nil || !strings.Contains(out, "nope") {
		t.Fatalf("CLI error output should carry vault's message; err %v out %q", err, out)
	}
	for _, dir := range []string{home, s.Dir} {
		if _, err := os.Stat(filepath.Join(dir, ".vault-token")); err == nil {
			t.Errorf("a token file was written in %s", dir)
		}
	}

	pgid := s.cmd.Process.Pid
	s.Stop()
	s.Stop() // idempotent
	// Killed plugins are reaped by init, not by us: allow it a moment.
	deadline := time.Now().Add(5 * time.Second)
	for err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH); err = syscall.Kill(-pgid, 0) {
		if time.Now().After(deadline) {
			t.Fatalf("processes of the server's group survive Stop (kill -0: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.Addr, "http://"), time.Second); err == nil {
		_ = c.Close()
		t.Fatal("server still listening after Stop")
	}
}

func TestMissingBinaryFailsWithAHint(t *testing.T) {
	t.Setenv("CK_VAULT_BIN", filepath.Join(t.TempDir(), "vault"))
	_, err := Launch(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "make vault plugin") {
		t.Fatalf("Launch without a vault binary: %v", err)
	}
}

func TestSkipOnlyWhenAsked(t *testing.T) {
	t.Setenv(SkipEnv, "1")
	t.Setenv("CK_VAULT_BIN", filepath.Join(t.TempDir(), "vault"))
	var skipped bool
	t.Run("start", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Start(t)
	})
	if !skipped {
		t.Fatal("Start did not skip with " + SkipEnv + "=1")
	}
}

// The test server is tools/vault/server, Vault 1.13.0's main with the
// deadlock detector that release leaves on for every lease and quota lock
// turned off (hashicorp/vault#23902): built from Vault's own main instead,
// every figure of make bench would carry that overhead, leased writes
// (creds) most.
func TestVaultBinaryIsTheFixedServer(t *testing.T) {
	bin := VaultBin()
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv(SkipEnv) == "1" {
			t.Skipf("%s: %v", bin, err)
		}
		t.Fatalf("%s: %v (make vault builds it)", bin, err)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if want := "github.com/cryptokeys/terraform-provider-cryptokeys/tools/vault/server"; info.Path != want {
		t.Fatalf("%s is built from %s, want %s: rebuild it (make vault)", bin, info.Path, want)
	}
}
