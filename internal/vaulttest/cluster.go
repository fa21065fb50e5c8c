package vaulttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Persistent servers and clusters, for fault tests: a dev server keeps its
// storage in memory, so restarts and failover need Vault the way operators
// run it. Every node is a real `vault server -config=...` process on
// 127.0.0.1 with free ports, real storage under tb.TempDir(), initialised
// with one unseal key, unsealed, and the plugin registered by sha256 and
// version. All processes end in tb.Cleanup, also when the test fails.
//
//	c := vaulttest.StartPersistent(t, vaulttest.StorageFile)
//	srv := c.Nodes[0]               // a *Server: Mount, CLI, Client, ...
//	c.Restart(t)                    // same storage, unsealed again
//
//	c := vaulttest.StartCluster(t, 3) // integrated storage (raft), HA
//	active, i := c.Active(t)
//	c.Kill(i)                       // SIGKILL the node and its plugins
//	c.Active(t)                     // waits for a standby to take over

// Storage backends StartPersistent offers.
const (
	StorageFile = "file"
	StorageRaft = "raft"
)

// Cluster is one or more Vault servers on persistent storage sharing one
// barrier: a single persistent server (StartPersistent) or an HA cluster on
// integrated storage (StartCluster).
type Cluster struct {
	// Nodes are the servers, each a *Server with its own Dir, LogPath,
	// Addr and Client; Token, PluginVersion and PluginSHA256 are the
	// cluster's.
	Nodes []*Server
	// Token is the root token; UnsealKey the single unseal key.
	Token     string
	UnsealKey string
	// Storage is StorageFile or StorageRaft.
	Storage string

	configs []string // config file per node
	running []bool
}

// StartPersistent starts one server on persistent storage (StorageFile or
// StorageRaft) and stops it when the test ends.
func StartPersistent(tb testing.TB, storage string) *Cluster {
	tb.Helper()
	if storage != StorageFile && storage != StorageRaft {
		tb.Fatalf("vaulttest: storage %q: want %q or %q", storage, StorageFile, StorageRaft)
	}
	return startCluster(tb, storage, 1)
}

// StartCluster starts an HA cluster of n nodes on integrated storage
// (raft): the first node is initialised, the others join it with
// retry_join, all are unsealed with the same key, and it returns once one
// node is active, the others are standbys and every node is a raft voter
// (so the cluster survives losing one). It stops every node when the test
// ends.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("vaulttest: a cluster needs at least one node, not %d", n)
	}
	return startCluster(tb, StorageRaft, n)
}

func startCluster(tb testing.TB, storage string, n int) *Cluster {
	tb.Helper()
	skipIfAsked(tb)
	vaultBin, pluginBin := VaultBin(), PluginBin()
	for _, b := range []string{vaultBin, pluginBin} {
		if _, err := os.Stat(b); err != nil {
			tb.Fatalf("vaulttest: %s is missing: run `make vault plugin` first (%v)", b, err)
		}
	}
	version, err := pluginVersion(pluginBin)
	if err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	c := &Cluster{Storage: storage, configs: make([]string, n), running: make([]bool, n)}
	// The nodes' directories first: TempDir removes them in a cleanup
	// registered now, which so runs after the sweep registered below.
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = filepath.Join(tb.TempDir(), fmt.Sprintf("node%d", i))
	}
	// Cleanups run last-in first-out: every node stops (also nodes whose
	// start failed half-way; registered before the first process starts),
	// then each node's files (logs, audit logs, storage) are swept for key
	// material, as Start does for a dev server.
	tb.Cleanup(func() {
		for _, s := range c.Nodes {
			sweep(tb, s)
		}
	})
	tb.Cleanup(c.StopAll)

	var sum string
	for i := 0; i < n; i++ {
		dir := dirs[i]
		pluginDir := filepath.Join(dir, "plugins")
		if err := os.MkdirAll(pluginDir, 0o750); err != nil {
			tb.Fatal(err)
		}
		// The catalog is replicated; the binary must be on every node.
		if sum, err = copyFile(pluginBin, filepath.Join(pluginDir, PluginName)); err != nil {
			tb.Fatal(err)
		}
		c.Nodes = append(c.Nodes, &Server{
			Dir:           dir,
			LogPath:       filepath.Join(dir, "vault.log"),
			PluginVersion: version,
			PluginSHA256:  sum,
		})
	}
	for i := range c.Nodes {
		if err := c.firstStart(i); err != nil {
			tb.Fatalf("vaulttest: node %d: %v", i, err)
		}
	}

	// Initialise through the first node: one key share, so one key unseals.
	init, err := probe(c.Nodes[0].Addr).Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		tb.Fatalf("vaulttest: init: %v (log: %s)", err, tail(c.Nodes[0].LogPath))
	}
	c.Token, c.UnsealKey = init.RootToken, init.Keys[0]
	for _, s := range c.Nodes {
		s.Token = c.Token
		s.Client.SetToken(c.Token)
	}
	if err := c.unseal(0); err != nil {
		tb.Fatalf("vaulttest: node 0: %v", err)
	}
	first, err := c.waitActive(60 * time.Second)
	if err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	if n > 1 {
		// Joining nodes become voters only after autopilot's stabilisation
		// time (10 s by default); until then losing the leader loses quorum.
		if _, err := first.Client.Logical().Write("sys/storage/raft/autopilot/configuration", map[string]any{
			"server_stabilization_time": "1s",
		}); err != nil {
			tb.Fatalf("vaulttest: autopilot configuration: %v", err)
		}
		for i := 1; i < n; i++ {
			if err := c.unseal(i); err != nil {
				tb.Fatalf("vaulttest: node %d: %v", i, err)
			}
		}
		if err := c.waitVoters(first, n, 90*time.Second); err != nil {
			tb.Fatalf("vaulttest: %v", err)
		}
		if err := c.waitStandbys(n, 60*time.Second); err != nil {
			tb.Fatalf("vaulttest: %v", err)
		}
	}
	if out, err := first.CLI(nil, "plugin", "register", "-sha256="+sum, "-version="+version, "secret", PluginName); err != nil {
		tb.Fatalf("vaulttest: registering the plugin: %v: %s", err, out)
	}
	return c
}

// firstStart picks free ports for node i, writes its configuration and
// starts it; a port taken between choosing and binding gets a new one.
func (c *Cluster) firstStart(i int) error {
	s := c.Nodes[i]
	for attempt := 1; ; attempt++ {
		apiPort, err := freePort()
		if err != nil {
			return err
		}
		clusterPort, err := freePort()
		if err != nil {
			return err
		}
		s.Addr = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
		c.configs[i] = filepath.Join(s.Dir, "config.hcl")
		if err := os.WriteFile(c.configs[i], []byte(c.config(i, apiPort, clusterPort)), 0o600); err != nil {
			return err
		}
		cfg := api.DefaultConfig()
		cfg.Address = s.Addr
		if s.Client, err = api.NewClient(cfg); err != nil {
			return err
		}
		err = c.startProcess(i)
		if err == nil {
			return nil
		}
		if attempt < 3 && strings.Contains(tail(s.LogPath), "address already in use") {
			continue
		}
		return err
	}
}

func (c *Cluster) config(i, apiPort, clusterPort int) string {
	s := c.Nodes[i]
	var b strings.Builder
	fmt.Fprintf(&b, "ui = false\ndisable_mlock = true\nraw_storage_endpoint = true\nlog_level = \"info\"\n")
	fmt.Fprintf(&b, "plugin_directory = %q\n", filepath.Join(s.Dir, "plugins"))
	fmt.Fprintf(&b, "api_addr = %q\n", s.Addr)
	fmt.Fprintf(&b, "cluster_addr = \"https://127.0.0.1:%d\"\n", clusterPort)
	fmt.Fprintf(&b, "listener \"tcp\" {\n  address = \"127.0.0.1:%d\"\n  cluster_address = \"127.0.0.1:%d\"\n  tls_disable = true\n}\n", apiPort, clusterPort)
	data := filepath.Join(s.Dir, "data")
	switch c.Storage {
	case StorageFile:
		fmt.Fprintf(&b, "storage \"file\" {\n  path = %q\n}\n", data)
	default:
		// performance_multiplier 1: election timeouts of about a second
		// (the default, 5, is tuned for busy WANs), so failover is quick.
		fmt.Fprintf(&b, "storage \"raft\" {\n  path = %q\n  node_id = \"node%d\"\n  performance_multiplier = 1\n", data, i)
		b.WriteString("  autopilot_reconcile_interval = \"1s\"\n  autopilot_update_interval = \"500ms\"\n")
		if i > 0 {
			fmt.Fprintf(&b, "  retry_join {\n    leader_api_addr = %q\n  }\n", c.Nodes[0].Addr)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// startProcess starts node i's vault process on its existing configuration
// and waits until its listener answers (sealed or not).
func (c *Cluster) startProcess(i int) error {
	s := c.Nodes[i]
	if err := os.MkdirAll(filepath.Join(s.Dir, "data"), 0o700); err != nil {
		return err
	}
	if err := s.spawn(VaultBin(), "server", "-config="+c.configs[i]); err != nil {
		return err
	}
	c.running[i] = true

	p := probe(s.Addr)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			c.running[i] = false
			return fmt.Errorf("vault exited during start (log: %s)", tail(s.LogPath))
		default:
		}
		if _, err := p.Sys().Health(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("vault at %s not listening after 60 s (log: %s)", s.Addr, tail(s.LogPath))
}

// unseal unseals node i with the cluster's key. A node joining a raft
// cluster stays sealed until the leader has answered its join challenge,
// so it is asked again until it reports unsealed.
func (c *Cluster) unseal(i int) error {
	s := c.Nodes[i]
	p := probe(s.Addr)
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if !c.running[i] {
			return fmt.Errorf("not running")
		}
		st, err := p.Sys().Unseal(c.UnsealKey)
		if err == nil && !st.Sealed {
			return nil
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("still sealed after 60 s (last error %v; log: %s)", last, tail(s.LogPath))
}

// waitActive waits until a running node reports itself active (or, without
// HA, unsealed) and returns it.
func (c *Cluster) waitActive(timeout time.Duration) (*Server, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if s, _ := c.active(); s != nil {
			return s, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	var logs strings.Builder
	for i, s := range c.Nodes {
		fmt.Fprintf(&logs, "\n--- node %d (running %v) ---\n%s", i, c.running[i], tail(s.LogPath))
	}
	return nil, fmt.Errorf("no active node after %s:%s", timeout, logs.String())
}

func (c *Cluster) active() (*Server, int) {
	for i, s := range c.Nodes {
		if !c.running[i] {
			continue
		}
		p := probe(s.Addr)
		h, err := p.Sys().Health()
		if err != nil || !h.Initialized || h.Sealed || h.Standby {
			continue
		}
		l, err := p.Sys().Leader()
		if err != nil {
			continue
		}
		if !l.HAEnabled || l.IsSelf {
			return s, i
		}
	}
	return nil, -1
}

// waitVoters waits until the raft configuration lists n voters.
func (c *Cluster) waitVoters(leader *Server, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		sec, err := leader.Client.Logical().Read("sys/storage/raft/configuration")
		if err == nil && sec != nil {
			cfg, _ := sec.Data["config"].(map[string]any)
			servers, _ := cfg["servers"].([]any)
			voters := 0
			for _, sv := range servers {
				if m, _ := sv.(map[string]any); m["voter"] == true {
					voters++
				}
			}
			last = fmt.Sprintf("%d servers, %d voters", len(servers), voters)
			if voters == n {
				return nil
			}
		} else {
			last = fmt.Sprint(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("raft: want %d voters, have %s after %s", n, last, timeout)
}

// waitStandbys waits until every node other than the active one is an
// unsealed standby that knows the active node.
func (c *Cluster) waitStandbys(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		active, standbys := 0, 0
		for i, s := range c.Nodes {
			if !c.running[i] {
				continue
			}
			p := probe(s.Addr)
			h, err := p.Sys().Health()
			if err != nil || h.Sealed {
				continue
			}
			l, err := p.Sys().Leader()
			if err != nil || l.LeaderAddress == "" {
				continue
			}
			if l.IsSelf {
				active++
			} else if h.Standby {
				standbys++
			}
		}
		last = fmt.Sprintf("%d active, %d standbys", active, standbys)
		if active == 1 && standbys == n-1 {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("HA: want 1 active and %d standbys, have %s after %s", n-1, last, timeout)
}

// Active returns the active node and its index, waiting up to a minute
// for one (after a failover, say).
func (c *Cluster) Active(tb testing.TB) (*Server, int) {
	tb.Helper()
	s, err := c.waitActive(60 * time.Second)
	if err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	for i, n := range c.Nodes {
		if n == s {
			return s, i
		}
	}
	panic("unreachable")
}

// Standbys returns the running nodes other than the active one.
func (c *Cluster) Standbys(tb testing.TB) []*Server {
	tb.Helper()
	active, _ := c.Active(tb)
	var out []*Server
	for i, s := range c.Nodes {
		if c.running[i] && s != active {
			out = append(out, s)
		}
	}
	return out
}

// WaitHealthy waits until one node is active, every other running node is
// an unsealed standby that knows it, and (on a cluster of more than one
// node) the raft configuration lists every node as a voter: after a node
// rejoins, say. It fails the test after a few minutes.
func (c *Cluster) WaitHealthy(tb testing.TB) {
	tb.Helper()
	active, err := c.waitActive(60 * time.Second)
	if err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	if len(c.Nodes) == 1 {
		return
	}
	running := 0
	for i := range c.Nodes {
		if c.running[i] {
			running++
		}
	}
	if err := c.waitVoters(active, len(c.Nodes), 90*time.Second); err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
	if err := c.waitStandbys(running, 60*time.Second); err != nil {
		tb.Fatalf("vaulttest: %v", err)
	}
}

// Running reports whether node i's process is up.
func (c *Cluster) Running(i int) bool { return c.running[i] }

// Stop stops node i gracefully, as a service manager does with Vault's own
// systemd unit (KillMode=process): a signal to the Vault process alone,
// which seals, lets the engine clean up (it flushes usage then) and stops
// its plugins. A signal to the whole process group would kill the plugins
// before Vault could ask them to clean up. SIGKILL to the group follows
// after 30 s, and for any plugin left behind. Its storage stays; Start
// brings it back.
func (c *Cluster) Stop(i int) {
	c.Nodes[i].Stop()
	c.running[i] = false
}

// Kill ends node i and its plugin processes with SIGKILL, as a crash or a
// lost machine would.
func (c *Cluster) Kill(i int) {
	s := c.Nodes[i]
	s.once.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	})
	c.running[i] = false
}

// Start starts a stopped node again on its own storage and ports and
// unseals it.
func (c *Cluster) Start(tb testing.TB, i int) {
	tb.Helper()
	if c.running[i] {
		tb.Fatalf("vaulttest: node %d is running", i)
	}
	if err := c.startProcess(i); err != nil {
		tb.Fatalf("vaulttest: restarting node %d: %v", i, err)
	}
	if err := c.unseal(i); err != nil {
		tb.Fatalf("vaulttest: node %d: %v", i, err)
	}
}

// Restart stops every node gracefully, starts them again on the same
// storage, unseals them and waits for an active node.
func (c *Cluster) Restart(tb testing.TB) {
	tb.Helper()
	for i := range c.Nodes {
		c.Stop(i)
	}
	for i := range c.Nodes {
		if err := c.startProcess(i); err != nil {
			tb.Fatalf("vaulttest: restarting node %d: %v", i, err)
		}
	}
	for i := range c.Nodes {
		if err := c.unseal(i); err != nil {
			tb.Fatalf("vaulttest: node %d: %v", i, err)
		}
	}
	c.Active(tb)
}

// StopAll stops every node; the test's Cleanup calls it. Safe to call twice.
func (c *Cluster) StopAll() {
	for i := range c.Nodes {
		if c.Nodes[i].cmd != nil {
			c.Stop(i)
		}
	}
}

// PID returns the id of the server's vault process (0 if it is not running).
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// PluginPIDs returns the ids of the plugin processes this server runs: the
// processes whose executable is the plugin binary in its plugin directory.
// (Each server has its own plugin directory, so no other server's plugins
// are counted.)
func (s *Server) PluginPIDs() ([]int, error) {
	want, err := filepath.EvalSymlinks(filepath.Join(s.Dir, "plugins", PluginName))
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		if strings.TrimSuffix(exe, " (deleted)") == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// probe is a client for polling: no retries, short timeout, no token.
func probe(addr string) *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	cfg.Timeout = 3 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		panic(err) // only on a malformed address, which we built
	}
	c.ClearToken()
	return c
}
