// Command devvault runs a local Vault dev server with the cryptokeys plugin
// registered (by sha256 and version) and mounted, for `make dev` and
// `make demo`. All its files live under -dir; nothing goes to $HOME.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

func main() {
	dir := flag.String("dir", ".dev", "directory for the server's files")
	mount := flag.String("mount", "cryptokeys", "path to mount the engine at (empty: register the plugin only)")
	envFile := flag.String("env-file", "", "also write the export lines to this file")
	flag.Parse()

	abs, err := filepath.Abs(*dir)
	if err == nil {
		err = os.MkdirAll(abs, 0o700)
	}
	if err != nil {
		fail(err)
	}
	// A fresh state directory each run: a dev server keeps nothing.
	state, err := os.MkdirTemp(abs, "vault-")
	if err != nil {
		fail(err)
	}
	srv, err := vaulttest.Launch(state)
	if err != nil {
		fail(err)
	}
	stop := func() { srv.Stop(); _ = os.RemoveAll(state) }
	if *mount != "" {
		if err := srv.Enable(*mount); err != nil {
			stop()
			fail(err)
		}
	}
	exports := fmt.Sprintf("export VAULT_ADDR=%s VAULT_TOKEN=%s\n", srv.Addr, srv.Token)
	if *envFile != "" {
		if err := os.WriteFile(*envFile, []byte(exports), 0o600); err != nil {
			stop()
			fail(err)
		}
	}
	where := "registered"
	if *mount != "" {
		where = "mounted at " + *mount + "/"
	}
	fmt.Printf("Vault %s is running with %s %s %s (server log: %s).\n\n", srv.Addr, vaulttest.PluginName, srv.PluginVersion, where, srv.LogPath)
	vaultDir := filepath.Dir(vaulttest.VaultBin())
	fmt.Printf("In another shell:\n\n    %s    export PATH=%s:$PATH   # the vault CLI this server came with\n    vault read %s/info\n\nPress Ctrl-C to stop it.\n", exports, vaultDir, *mount)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Println("\nstopping Vault")
	stop()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "devvault:", err)
	os.Exit(1)
}
