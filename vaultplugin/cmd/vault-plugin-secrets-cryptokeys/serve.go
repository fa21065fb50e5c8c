package main

import (
	"math"
	"os"

	"github.com/cryptokeys/terraform-provider-cryptokeys/vaultplugin"
	log "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/hashicorp/vault/sdk/plugin"
	"google.golang.org/grpc"
)

// streamWorkers is how many goroutines of the plugin's gRPC server live on
// to handle Vault's requests. Without them gRPC starts a goroutine for
// every request, and each one grew its stack again while handling it:
// copying stacks (runtime.newstack, copystack) took a tenth of the plugin's
// CPU in a profile of creds under load, and gone with workers. A request
// arriving while every worker is busy still gets a goroutine of its own.
const streamWorkers = 32

// serve is the SDK's plugin.ServeMultiplex (vault/sdk v0.25.1) with one
// option added to the gRPC server: streamWorkers. The plugin sets, the
// handshake and the message size limits are the SDK's.
func serve(tlsProvider plugin.TLSProviderFunc) error {
	logger := log.New(&log.LoggerOptions{Level: log.Trace, Output: os.Stderr, JSONFormat: true})
	backend := func(multiplexing bool) goplugin.PluginSet {
		return goplugin.PluginSet{plugin.BackendPluginName: &plugin.GRPCBackendPlugin{
			Factory:             vaultplugin.Factory,
			MultiplexingSupport: multiplexing,
			Logger:              logger,
		}}
	}
	if err := pluginutil.OptionallyEnableMlock(); err != nil {
		return err
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig,
		// Versions 3 and 4 are the same gRPC protocol; 5 multiplexes
		// mounts over one process, as Vault 1.12 and later run it.
		VersionedPlugins: map[int]goplugin.PluginSet{3: backend(false), 4: backend(false), 5: backend(true)},
		Logger:           logger,
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts,
				grpc.MaxRecvMsgSize(math.MaxInt32),
				grpc.MaxSendMsgSize(math.MaxInt32),
				grpc.NumStreamWorkers(streamWorkers))
			return goplugin.DefaultGRPCServer(opts)
		},
		// For protocol versions 3 and 4; version 5 uses AutoMTLS.
		TLSProvider: tlsProvider,
	})
	return nil
}
