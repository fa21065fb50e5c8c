// Command terraform-provider-cryptokeys serves the cryptokeys Terraform
// provider (protocol 6).
package main

import (
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/providerproc"
	"github.com/cryptokeys/terraform-provider-cryptokeys/provider"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6/tf6server"
)

// version is set at build time: -ldflags "-X main.version=0.1.0".
var version = "dev"

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	var debug, showVersion bool
	flag.BoolVar(&debug, "debug", false, "run with support for debuggers like delve")
	flag.BoolVar(&showVersion, "version", false, "print the version and exit")
	flag.Parse()
	if showVersion {
		fmt.Println(version)
		return nil
	}
	providerproc.QuietUnlessAsked(os.Getenv, os.Setenv)
	providerproc.LessGC(os.Getenv)
	// For profiling only (the bench harness sets it): a CPU profile and
	// the process's CPU time, written into that directory when Terraform
	// stops the provider.
	if dir := os.Getenv(providerproc.ProfileEnv); dir != "" {
		stop, err := startProfile(dir)
		if err != nil {
			return err
		}
		defer stop()
	}
	// tf6server rather than providerserver.Serve, so that Terraform talks
	// to the provider through provider.NewProtocol6, which keeps key
	// material out of diagnostics.
	factory := provider.NewProtocol6(provider.New(version)())
	var opts []tf6server.ServeOpt
	if debug {
		opts = append(opts, tf6server.WithManagedDebug())
	}
	return tf6server.Serve("registry.terraform.io/cryptokeys/cryptokeys", func() tfprotov6.ProviderServer {
		s, err := factory()
		if err != nil {
			log.Fatal(err)
		}
		return s
	}, opts...)
}
