package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"
)

// profileEnv names a directory: when set, each provider process writes
// provider-<pid>.pprof (a CPU profile, for `go tool pprof`) and
// provider-<pid>.cpu (its user plus system CPU time in microseconds) there
// when Terraform stops it. For profiling only; the bench harness sets it
// to measure tf_provider_cpu_ms_per_resource.
const profileEnv = "CK_PROVIDER_PROFILE_DIR"

func startProfile(dir string) (func(), error) {
	base := filepath.Join(dir, fmt.Sprintf("provider-%d", os.Getpid()))
	f, err := os.Create(base + ".pprof") // #nosec G304 G703 -- a directory the person profiling names in the environment, for profiling only
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
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return
		}
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		_ = os.WriteFile(base+".cpu", []byte(fmt.Sprintf("%d\n", cpu.Microseconds())), 0o600) // #nosec G703 -- the same directory, for profiling only
	}, nil
}
