// Package vaulttest starts a real Vault server for integration and
// acceptance tests: the MPL-2.0 Vault 1.13 built into bin/vault, in dev mode
// on a free 127.0.0.1 port, with the real plugin binary registered by sha256
// and version. It is the one way tests in this repository get a Vault.
//
// One server per test:
//
//	srv := vaulttest.Start(t)      // stopped in t.Cleanup, also on failure
//	mount := srv.Mount(t)          // plugin enabled at a fresh path
//	srv.MustCLI(t, "read", mount+"/creds/role")
//
// One server per package (cheaper; tests keep apart by mounting their own
// paths):
//
//	func TestMain(m *testing.M) { vaulttest.Main(m) }
//	func TestX(t *testing.T) { srv := vaulttest.Shared(t); mount := srv.Mount(t); ... }
//
// The shared server starts on first use, so unit tests and fuzzing in the
// same package never start one.
//
// Binaries come from CK_VAULT_BIN and CK_PLUGIN_BIN, or bin/ at the
// repository root (`make vault plugin` builds them). A missing binary fails
// the test: integration tests never skip silently. Only an explicit
// CK_INTEGRATION_SKIP=1 (what `make unit` sets) skips them.
//
// Every server runs with raw_storage_endpoint enabled, so tests can read
// what the engine wrote (MountStorage); its output goes to LogPath, and
// every vault CLI run gets HOME inside Dir, so no token file reaches the
// user's home.
package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// PluginName is the plugin's catalog name.
const PluginName = "vault-plugin-secrets-cryptokeys"

// Server is a running Vault dev server with the plugin registered.
type Server struct {
	Addr   string // http://127.0.0.1:PORT
	Token  string // root token
	Client *api.Client
	// Dir holds the server's files: plugin directory, config, logs, and the
	// HOME of every vault CLI run, so nothing lands in the user's home.
	Dir           string
	PluginDir     string // the server's plugin_directory
	LogPath       string
	PluginVersion string
	PluginSHA256  string

	// caFile is the CA of a TLS server (see TLSServer), "" for HTTP.
	caFile string

	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once

	// inPath are key_ids whose keys a test sent inside a request path on
	// purpose (see KeyInPath); the sweep does not report them.
	inPathMu sync.Mutex
	inPath   map[string]bool
}

// KeyInPath tells the end-of-run sweep that a test sends the key with this
// key_id inside a request path on purpose. Vault writes request paths in
// clear to the audit log and, at trace level, to its log: the documented
// limit (a key_id belongs in a path, a key never), which such a test
// exercises. Every other key found in clear still fails the run.
func (s *Server) KeyInPath(keyID string) {
	s.inPathMu.Lock()
	defer s.inPathMu.Unlock()
	if s.inPath == nil {
		s.inPath = map[string]bool{}
	}
	s.inPath[keyID] = true
}

func (s *Server) expectedInPath(keyID string) bool {
	s.inPathMu.Lock()
	defer s.inPathMu.Unlock()
	return s.inPath[keyID]
}

// RepoRoot is the directory holding go.mod.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			// #nosec G304 -- go.mod in a parent of the working directory
			if b, _ := os.ReadFile(filepath.Join(dir, "go.mod")); bytes.Contains(b, []byte("module github.com/cryptokeys/terraform-provider-cryptokeys\n")) {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("vaulttest: repository root (go.mod) not found")
		}
		dir = parent
	}
}

// VaultBin is the Vault server binary tests run.
func VaultBin() string { return binPath("CK_VAULT_BIN", "vault") }

// PluginBin is the plugin binary tests register.
func PluginBin() string { return binPath("CK_PLUGIN_BIN", PluginName) }

func binPath(env, name string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	return filepath.Join(RepoRoot(), "bin", name)
}

// SkipEnv names the variable that, set to 1, makes Start and Shared skip
// the test instead of starting Vault.
const SkipEnv = "CK_INTEGRATION_SKIP"

func skipIfAsked(tb testing.TB) {
	tb.Helper()
	if os.Getenv(SkipEnv) == "1" {
		tb.Skip(SkipEnv + "=1: integration test skipped")
	}
}

// Start starts a server and stops it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, false)
}

// start launches a dev server (HTTPS when tls is set) for a test: it stops
// the server when the test ends and then sweeps its files.
func start(tb testing.TB, tls bool) *Server {
	tb.Helper()
	skipIfAsked(tb)
	s, err := launch(tb.TempDir(), tls)
	if err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	// Cleanups run last-in first-out: the server stops (flushing its
	// logs), then its files are swept for key material.
	tb.Cleanup(func() { sweep(tb, s) })
	tb.Cleanup(s.Stop)
	return s
}

// sweep fails tb for every piece of key material in s's files.
func sweep(tb testing.TB, s *Server) {
	findings, err := s.LeakFindings()
	if err != nil {
		tb.Errorf("vaulttest: sweeping %s for key material: %v", s.Dir, err)
	}
	for _, f := range findings {
		tb.Errorf("vaulttest: secret hygiene: %s", f)
	}
}

// Launch starts a server with its files in dir, for tools outside tests
// (make dev, make demo). The caller must Stop it.
func Launch(dir string) (*Server, error) { return launch(dir, false) }

// launch starts a dev server with the plugin registered, listening on
// HTTPS with a CA of its own when tls is set (see TLSServer).
func launch(dir string, tls bool) (*Server, error) {
	vaultBin, pluginBin := VaultBin(), PluginBin()
	for _, b := range []string{vaultBin, pluginBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%s is missing: run `make vault plugin` first (%v)", b, err)
		}
	}
	version, err := pluginVersion(pluginBin)
	if err != nil {
		return nil, err
	}
	pluginDir := filepath.Join(dir, "plugins")
	tlsDir := filepath.Join(dir, "tls")
	for _, d := range []string{pluginDir, tlsDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}
	sum, err := copyFile(pluginBin, filepath.Join(pluginDir, PluginName))
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "config.hcl")
	// raw_storage_endpoint lets storage tests read what the engine wrote.
	if err := os.WriteFile(config, []byte("raw_storage_endpoint = true\n"), 0o600); err != nil {
		return nil, err
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	var s *Server
	// The free port is only free until Vault binds it; a parallel test may
	// take it first, so a bind failure gets a new port.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s = &Server{
			Addr:          fmt.Sprintf("%s://127.0.0.1:%d", scheme, port),
			Token:         "root-" + randomHex(12),
			Dir:           dir,
			PluginDir:     pluginDir,
			LogPath:       filepath.Join(dir, "vault.log"),
			PluginVersion: version,
			PluginSHA256:  sum,
		}
		args := []string{"server", "-dev",
			"-dev-root-token-id=" + s.Token,
			"-dev-listen-address=" + strings.TrimPrefix(s.Addr, scheme+"://"),
			"-dev-plugin-dir=" + pluginDir,
			"-dev-no-store-token",
			"-config=" + config,
		}
		if tls {
			// -dev-tls writes a fresh CA, certificate and key on every start.
			s.caFile = filepath.Join(tlsDir, "vault-ca.pem")
			for _, f := range []string{"vault-ca.pem", "vault-cert.pem", "vault-key.pem"} {
				_ = os.Remove(filepath.Join(tlsDir, f))
			}
			args = append(args, "-dev-tls", "-dev-tls-cert-dir="+tlsDir)
		}
		if err := s.spawn(vaultBin, args...); err != nil {
			return nil, err
		}
		err = s.waitReady()
		if err == nil {
			break
		}
		s.Stop()
		log := tail(s.LogPath)
		if attempt < 3 && strings.Contains(log, "address already in use") {
			continue
		}
		return nil, fmt.Errorf("%v (log: %s)", err, log)
	}
	// Register explicitly by sha256 and version, as an operator would; the
	// -dev-plugin-dir registration alone carries no version.
	if out, err := s.CLI(nil, "plugin", "register", "-sha256="+sum, "-version="+version, "secret", PluginName); err != nil {
		s.Stop()
		return nil, fmt.Errorf("registering the plugin: %v: %s", err, out)
	}
	return s, nil
}

// spawn starts vault with args, its output appended to LogPath, as a
// fresh process of s (Stop works on it again).
func (s *Server) spawn(vaultBin string, args ...string) error {
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(vaultBin, args...) // #nosec G204 -- the Vault binary the test run names (CK_VAULT_BIN or bin/vault), with arguments this package builds
	cmd.Env = append(os.Environ(), "HOME="+s.Dir, "VAULT_LOG_LEVEL=info")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so Stop also ends the plugin processes Vault
	// started. Pdeathsig covers what Cleanup cannot: a test binary killed by
	// -timeout or a crash; SIGTERM lets Vault stop its plugins on the way
	// out. (It fires when the forking OS thread exits, which Go does only
	// for goroutines that exit while locked to their thread; nothing here
	// does that.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	s.cmd, s.done, s.once = cmd, done, sync.Once{}
	return nil
}

// waitReady waits for an initialised, unsealed server, reached through a
// client made once the server is up (a TLS server writes its CA first).
func (s *Server) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("vault exited during start")
		default:
		}
		if s.Client == nil {
			if s.caFile != "" {
				if _, err := os.Stat(s.caFile); err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
			}
			c, err := s.NewClient()
			if err != nil {
				return err
			}
			c.SetToken(s.Token)
			s.Client = c
		}
		if h, err := s.Client.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("vault not ready after 60 s")
}

// NewClient returns a client for the server that carries no token. For a
// TLS server it trusts the server's CA and nothing else, whatever VAULT_*
// variables the test process has.
func (s *Server) NewClient() (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = s.Addr
	if s.caFile != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.caFile}); err != nil {
			return nil, err
		}
		// DefaultConfig applied the process's VAULT_SKIP_VERIFY and
		// VAULT_TLS_SERVER_NAME; undo them.
		t, ok := cfg.HttpClient.Transport.(*http.Transport)
		if !ok {
			return nil, fmt.Errorf("unexpected transport %T", cfg.HttpClient.Transport)
		}
		t.TLSClientConfig.InsecureSkipVerify = false
		t.TLSClientConfig.ServerName = ""
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.ClearToken()
	c.ClearNamespace()
	return c, nil
}

// Stop ends the server and every process it started. Safe to call twice.
func (s *Server) Stop() {
	s.once.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		// SIGTERM to Vault alone, as systemd's KillMode=process does: Vault
		// then unloads its mounts, and the engine flushes its in-memory
		// usage before its plugin process ends. A signal to the whole group
		// would kill the plugin first and lose that flush.
		pid := s.cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.done
		}
		// Whatever plugin process outlived Vault goes with its group.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	})
}

// Mount enables the plugin, at its registered version, at a fresh path and
// disables it when the test ends. It returns the path without slashes.
func (s *Server) Mount(tb testing.TB) string {
	tb.Helper()
	path := "ck-" + randomHex(4)
	s.MountAt(tb, path)
	return path
}

// MountAt enables the plugin at path.
func (s *Server) MountAt(tb testing.TB, path string) {
	tb.Helper()
	if err := s.Enable(path); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _, _ = s.CLI(nil, "secrets", "disable", path) })
}

// Enable enables the plugin, at its registered version, at path.
func (s *Server) Enable(path string) error {
	if out, err := s.CLI(nil, "secrets", "enable", "-path="+path, "-plugin-version="+s.PluginVersion, PluginName); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// Env is what a subprocess (vault, terraform, the scanner) needs to reach
// the server.
func (s *Server) Env() []string {
	env := []string{"VAULT_ADDR=" + s.Addr, "VAULT_TOKEN=" + s.Token}
	if s.caFile != "" {
		env = append(env, "VAULT_CACERT="+s.caFile)
	}
	return env
}

// CLI runs the real vault CLI against the server and returns its standard
// output; on failure err carries the exit status and out the standard
// error too. tb may be nil.
func (s *Server) CLI(tb testing.TB, args ...string) (string, error) {
	if tb != nil {
		tb.Helper()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, VaultBin(), args...) // #nosec G204 -- the Vault CLI the test run names, with the test's own arguments
	cmd.Env = append(os.Environ(), s.Env()...)
	// VAULT_SKIP_VERIFY is cleared, so the CLI checks a TLS server's
	// certificate against its CA.
	cmd.Env = append(cmd.Env, "HOME="+s.Dir, "VAULT_FORMAT=", "NO_COLOR=1", "VAULT_SKIP_VERIFY=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("vault %s: %w", firstWords(args), err)
	}
	return stdout.String(), nil
}

// MustCLI is CLI that fails the test on error.
func (s *Server) MustCLI(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := s.CLI(tb, args...)
	if err != nil {
		tb.Fatalf("%v\n%s", err, out)
	}
	return out
}

// EnableFileAudit turns on a file audit device and returns the log's path.
func (s *Server) EnableFileAudit(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(s.Dir, "audit-"+randomHex(4)+".log")
	s.MustCLI(tb, "audit", "enable", "-path=file-"+randomHex(3), "file", "file_path="+path)
	return path
}

// ServerLog returns what the server has logged so far (plugin output
// included), for secret-hygiene checks.
func (s *Server) ServerLog(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// firstWords names a CLI call in errors without its arguments, which may
// hold keys.
func firstWords(args []string) string {
	n := min(2, len(args))
	return strings.Join(args[:n], " ")
}

func pluginVersion(bin string) (string, error) {
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		return "", fmt.Errorf("%s -version: %v", bin, err)
	}
	v := strings.TrimSpace(string(out))
	if !strings.HasPrefix(v, "v") {
		return "", fmt.Errorf("%s -version printed %q, not a v-prefixed semantic version", bin, v)
	}
	return v, nil
}

func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src) // #nosec G304 -- the plugin binary the test run names
	if err != nil {
		return "", err
	}
	defer in.Close()
	// #nosec G302 G304 -- Vault runs the copy, so it must be executable; dst is in the server's temp dir
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		_ = out.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), out.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(path string) string {
	b, _ := os.ReadFile(path) // #nosec G304 -- the server's own log, in its temp dir
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

var shared struct {
	mu      sync.Mutex
	inMain  bool
	dir     string
	started bool
	srv     *Server
	err     error
}

// Main runs a package's tests (call it from TestMain) and then stops the
// package's shared server, if a test started one.
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	if shared.srv != nil {
		shared.srv.Stop()
		// The shared server ran every test that used it: sweep its log
		// and audit logs for key material once they are complete.
		findings, err := shared.srv.LeakFindings()
		if err != nil {
			fmt.Fprintf(os.Stderr, "vaulttest: sweeping the shared server for key material: %v\n", err)
			code = 1
		}
		for _, f := range findings {
			fmt.Fprintf(os.Stderr, "vaulttest: secret hygiene (shared server): %s\n", f)
			code = 1
		}
		if len(findings) > 0 && code != 0 {
			fmt.Fprintln(os.Stderr, "FAIL: key material found in the shared server's logs")
		}
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// Shared returns the package's one server, starting it on first use. It
// requires Main in TestMain, which stops the server after the last test. A
// server that failed to start fails every test that asks for it.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	skipIfAsked(tb)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		tb.Fatal("vaulttest.Shared needs `func TestMain(m *testing.M) { vaulttest.Main(m) }` in the package, which stops the server")
	}
	if !shared.started {
		shared.started = true
		shared.dir, shared.err = os.MkdirTemp("", "vaulttest-")
		if shared.err == nil {
			shared.srv, shared.err = Launch(shared.dir)
		}
	}
	if shared.err != nil {
		tb.Fatalf("vaulttest: shared server: %v", shared.err)
	}
	return shared.srv
}

// MountUUID returns the storage UUID of the mount at path: the
// engine's storage lives under sys/raw/logical/<uuid>/.
func (s *Server) MountUUID(tb testing.TB, path string) string {
	tb.Helper()
	mounts, err := s.Client.Sys().ListMounts()
	if err != nil {
		tb.Fatal(err)
	}
	m, ok := mounts[strings.Trim(path, "/")+"/"]
	if !ok || m.UUID == "" {
		tb.Fatalf("no mount (or no uuid) at %s/", path)
	}
	return m.UUID
}

// MountStorage reads every entry the engine mounted at path has written
// (through sys/raw, which the server enables), keyed by storage path
// relative to the mount. Values are what the engine stored, as Vault sees
// them below the barrier.
func (s *Server) MountStorage(tb testing.TB, path string) map[string]string {
	tb.Helper()
	root := "sys/raw/logical/" + s.MountUUID(tb, path) + "/"
	out := map[string]string{}
	var walk func(prefix string)
	walk = func(prefix string) {
		sec, err := s.Client.Logical().List(root + prefix)
		if err != nil {
			tb.Fatalf("list %s%s: %v", root, prefix, err)
		}
		if sec == nil {
			return
		}
		keys, _ := sec.Data["keys"].([]any)
		for _, k := range keys {
			name, _ := k.(string)
			if strings.HasSuffix(name, "/") {
				walk(prefix + name)
				continue
			}
			e, err := s.Client.Logical().Read(root + prefix + name)
			if err != nil && strings.Contains(err.Error(), "being decompressed is empty") {
				// Vault 1.13's sys/raw cannot read an entry with an empty
				// value (the engine's index entries are such).
				out[prefix+name] = ""
				continue
			}
			if err != nil {
				tb.Fatalf("read %s%s%s: %v", root, prefix, name, err)
			}
			if e == nil {
				continue // removed since the list
			}
			v, _ := e.Data["value"].(string)
			out[prefix+name] = v
		}
	}
	walk("")
	return out
}
