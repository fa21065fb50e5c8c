// Command vault-plugin-secrets-cryptokeys is the cryptokeys secrets engine,
// run by Vault as an external, multiplexed plugin.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/cryptokeys/terraform-provider-cryptokeys/vaultplugin"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"
)

func main() {
	// -version is for people and install scripts; Vault never passes it.
	if len(os.Args) == 2 && (os.Args[1] == "-version" || os.Args[1] == "--version") {
		fmt.Println(vaultplugin.Version)
		return
	}

	tuneGC()

	meta := &api.PluginAPIClientMeta{}
	flags := meta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	tlsConfig := meta.GetTLSConfig()
	tlsProviderFunc := api.VaultPluginTLSProvider(tlsConfig)

	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: vaultplugin.Factory,
		TLSProviderFunc:    tlsProviderFunc,
	}); err != nil {
		fatal(err)
	}
}

// gcPercent is the plugin's GOGC unless its environment sets one.
const gcPercent = 50

// tuneGC sets GOGC to gcPercent unless the environment sets GOGC. The
// engine's heap is mostly its record cache, which lives long: with Go's
// default GOGC=100 the process may grow to twice it before a collection.
// Half that headroom keeps a plugin with 100,000 cached keys well under
// 200 MB for a little more GC work. A GOGC in the plugin's catalog entry
// (the `env` of sys/plugins/catalog) wins.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
