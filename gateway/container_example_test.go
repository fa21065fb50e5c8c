package gateway

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// The container example (examples/gateway/container) cannot be run here:
// the machine has no container runtime. What one would do with it is done
// without one, from the Dockerfile's own lines: its build line builds a
// binary that needs no libc (the distroless/static image has none); the
// ENTRYPOINT, run as the image's USER (nonroot, uid 65532, when the test
// runs as root), reads the config at the path compose mounts it, serves
// /authz once ready, and on the STOPSIGNAL exits 0 within compose's
// stop_grace_period. What stays untested: the image build itself, the
// distroless base and compose's networking.
func TestIntegration_ContainerExampleEntrypoint(t *testing.T) {
	dir := filepath.Join(vaulttest.RepoRoot(), "examples", "gateway", "container")
	df, err := os.ReadFile(filepath.Join(dir, "Dockerfile")) // #nosec G304 -- the repository's own example
	if err != nil {
		t.Fatal(err)
	}
	build := regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 go build (.*) -o /out/cryptokeys (\./cmd/cryptokeys)$`).FindStringSubmatch(string(df))
	if build == nil {
		t.Fatal("the Dockerfile has no `RUN CGO_ENABLED=0 go build ... -o /out/cryptokeys ./cmd/cryptokeys` line")
	}
	var entry []string
	if m := regexp.MustCompile(`(?m)^ENTRYPOINT (\[.*\])$`).FindStringSubmatch(string(df)); m == nil || json.Unmarshal([]byte(m[1]), &entry) != nil {
		t.Fatalf("the Dockerfile's ENTRYPOINT is not an exec-form array: %v", m)
	}
	if !regexp.MustCompile(`(?m)^USER nonroot:nonroot$`).Match(df) || !regexp.MustCompile(`(?m)^STOPSIGNAL SIGTERM$`).Match(df) {
		t.Fatal("the Dockerfile no longer says USER nonroot:nonroot and STOPSIGNAL SIGTERM, which this test stands in for")
	}
	const image, mounted, grace = "/usr/local/bin/cryptokeys", "/etc/cryptokeys/gateway.hcl", 20 * time.Second
	if len(entry) != 4 || entry[0] != image || entry[1] != "gateway" || entry[2] != "-config" || entry[3] != mounted {
		t.Fatalf("ENTRYPOINT %q: want [%s gateway -config %s]", entry, image, mounted)
	}
	compose, err := os.ReadFile(filepath.Join(dir, "compose.yaml")) // #nosec G304 -- the repository's own example
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(compose), "- ./gateway.hcl:"+mounted+":ro") || !strings.Contains(string(compose), "stop_grace_period: 20s") {
		t.Fatalf("compose.yaml no longer mounts gateway.hcl at %s or gives a 20s stop_grace_period", mounted)
	}

	// A directory the image's user can read, as a read-only mount is.
	root := t.TempDir()
	for d := root; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil { // #nosec G302 -- a test directory another uid must traverse
			t.Fatal(err)
		}
	}
	bin := filepath.Join(root, "cryptokeys")
	args := append([]string{"build"}, shellWords(build[1])...)
	args = append(args, "-o", bin, build[2])
	cmd := exec.Command("go", args...) // #nosec G204 -- the Dockerfile's own build line
	cmd.Dir = vaulttest.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the Dockerfile's build line makes a dynamically linked binary: distroless/static has no loader or libc")
		}
	}
	_ = f.Close()

	e := newEngine(t, vaulttest.Shared(t))
	port := freePort(t)
	cfg := fmt.Sprintf(baseConfig, e.mount) + fmt.Sprintf("listen = \"127.0.0.1:%d\"\n", port)
	cfgPath := filepath.Join(root, "gateway.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil { // #nosec G306 -- read by the image's user, as a mounted file is
		t.Fatal(err)
	}
	run := exec.Command(bin, entry[1], entry[2], cfgPath) // #nosec G204 -- the ENTRYPOINT, its binary built above
	run.Env = append(os.Environ(), "VAULT_ADDR="+e.srv.Addr, "VAULT_TOKEN="+e.token(t))
	logPath := filepath.Join(root, "gateway.log")
	logf, err := os.Create(logPath) // #nosec G304 -- the test's own directory
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	run.Stdout, run.Stderr = logf, logf
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		run.SysProcAttr.Credential = &syscall.Credential{Uid: 65532, Gid: 65532} // distroless's nonroot
	} else {
		t.Log("not root: the ENTRYPOINT runs as this test's user, not as nonroot (uid 65532)")
	}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath) // #nosec G304 -- the test's own directory
			t.Logf("gateway log:\n%s", b)
		}
	})

	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, 20*time.Second, "the ENTRYPOINT's gateway ready", func() bool {
		st, _, _ := get(t, url+"/readyz", nil)
		return st == 200
	})
	k := e.issue(t, "dev-reader")
	req, _ := http.NewRequest("GET", url+"/authz", nil)
	req.Header.Set("Authorization", "Bearer "+k.key)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", "/v1/market/btc-usd")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(HeaderKeyID) != k.id {
		t.Fatalf("/authz of a valid key through the ENTRYPOINT: %d, key id %q", resp.StatusCode, resp.Header.Get(HeaderKeyID))
	}

	sent := time.Now()
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("after SIGTERM the gateway exited with %v; a container runtime reports that as a failure", err)
		}
		t.Logf("stopped %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	case <-time.After(grace):
		t.Fatalf("the gateway did not exit within compose's stop_grace_period (%s) of SIGTERM", grace)
	}
}

// shellWords splits a Dockerfile RUN line's arguments as the shell would,
// for the little quoting they use (double quotes, no escapes).
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
			}
			inWord = false
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}
