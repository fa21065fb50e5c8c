// Command vault-plugin-secrets-cryptokeys is the cryptokeys secrets engine,
// run by Vault as an external, multiplexed plugin.
package main

import (
	"fmt"
	"os"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/gcpace"
	"github.com/cryptokeys/terraform-provider-cryptokeys/vaultplugin"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
)

func main() {
	// -version is for people and install scripts; Vault never passes it.
	if len(os.Args) == 2 && (os.Args[1] == "-version" || os.Args[1] == "--version") {
		fmt.Println(vaultplugin.Version)
		return
	}

	gcpace.Start()

	meta := &api.PluginAPIClientMeta{}
	flags := meta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	tlsConfig := meta.GetTLSConfig()
	tlsProviderFunc := api.VaultPluginTLSProvider(tlsConfig)

	if err := serve(tlsProviderFunc); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
