package vaulttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// Agent is a running Vault Agent: the `vault agent` subcommand of the same
// bin/vault (Vault 1.13) the servers run, so its consul-template is the one
// Vault 1.13 ships (v0.29.5).
type Agent struct {
	// Dir holds the agent's config (agent.hcl) and log (agent.log), and is
	// its HOME. Keep what its templates render elsewhere, so a sweep of
	// Dir for key material (LeakFindings) covers the log alone.
	Dir     string
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// StartAgent runs `vault agent -config=<dir>/agent.hcl -log-level=<level>`
// with config as that file's text, in a directory of the test's own. The
// agent runs in its own process group, which is killed when the test ends
// (also on failure); if the test binary itself dies the kernel kills the
// agent (Pdeathsig). It inherits no VAULT_* variable: what it reaches and
// how it authenticates is in config alone. Configs in tests reach loopback
// servers only, and should start no listener.
func StartAgent(tb testing.TB, config, level string) *Agent {
	tb.Helper()
	skipIfAsked(tb)
	vaultBin := VaultBin()
	if _, err := os.Stat(vaultBin); err != nil {
		tb.Fatalf("vaulttest: %s is missing: run `make vault` first (%v)", vaultBin, err)
	}
	dir := tb.TempDir()
	a := &Agent{Dir: dir, LogPath: filepath.Join(dir, "agent.log"), done: make(chan struct{})}
	cfg := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		tb.Fatal(err)
	}
	logf, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(vaultBin, "agent", "-config="+cfg, "-log-level="+level) // #nosec G204 -- the Vault binary the test run names, with a config the test wrote
	env := []string{"HOME=" + dir}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		tb.Fatal(err)
	}
	a.cmd = cmd
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(a.done)
	}()
	tb.Cleanup(a.Stop)
	return a
}

// Stop ends the agent: SIGTERM, then its whole process group is killed
// (at once after 10 s without an exit). Safe to call twice.
func (a *Agent) Stop() {
	a.once.Do(func() {
		pid := a.cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-a.done
	})
}

// Exited reports whether the agent process has ended.
func (a *Agent) Exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// Log returns what the agent has logged so far, every well-formed key in
// it replaced by its key_id, so a failing test may print it.
func (a *Agent) Log(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(a.LogPath)
	if err != nil {
		tb.Fatal(err)
	}
	return Redact(string(b))
}

// Redact replaces every key-shaped string Find sees in s (checksum valid
// or not, raw or escaped) with <key key_id>.
func Redact(s string) string {
	var out strings.Builder
	last := 0
	for _, m := range keyformat.Find([]byte(s)) {
		end := m.Offset + m.Len
		if m.Offset < last || end > len(s) {
			continue
		}
		out.WriteString(s[last:m.Offset])
		fmt.Fprintf(&out, "<key %s>", m.Key.KeyID)
		last = end
	}
	out.WriteString(s[last:])
	return out.String()
}
