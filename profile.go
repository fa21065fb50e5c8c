package main

import (
	"os"
	"runtime/pprof"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/providerproc"
)

// startProfile starts this process's CPU profile into
// providerproc.ProfileEnv's directory; the function it returns stops it
// and writes the process's CPU time beside it.
func startProfile(dir string) (func(), error) {
	f, err := os.Create(providerproc.ProfileBase(dir) + ".pprof") // #nosec G304 G703 -- a directory the person profiling names in the environment, for profiling only
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		providerproc.WriteCPUTime(dir)
	}, nil
}
