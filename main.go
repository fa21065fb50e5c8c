// Command terraform-provider-cryptokeys serves the cryptokeys Terraform
// provider (protocol 6).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/cryptokeys/terraform-provider-cryptokeys/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
)

// version is set at build time: -ldflags "-X main.version=0.1.0".
var version = "dev"

func main() {
	var debug, showVersion bool
	flag.BoolVar(&debug, "debug", false, "run with support for debuggers like delve")
	flag.BoolVar(&showVersion, "version", false, "print the version and exit")
	flag.Parse()
	if showVersion {
		fmt.Println(version)
		return
	}
	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/cryptokeys/cryptokeys",
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
