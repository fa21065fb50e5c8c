// Package providerproc is what a Terraform provider process of this
// repository does before it serves: the real provider (the root main.go)
// and the bench's floor provider (bench/tffloor), which must cost what the
// real one costs around its RPCs, or the floor would not be a floor.
package providerproc

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"
)

// The framework and terraform-plugin-go log every RPC, attribute walk and
// plan modifier at TRACE, and unless told otherwise they write all of it,
// as JSON, to the provider's stderr, where Terraform parses each line and
// then drops it unless TF_LOG (or TF_LOG_PROVIDER) asked for it. In a plan
// over 200 keys that was a third of the provider's CPU (issue 20 item 4),
// and Terraform's parsing of it more on top. So when nothing asks for
// logs, the SDK's and the provider's loggers are turned off at the source;
// any TF_LOG* variable leaves every level as it was.

// logSwitches are the variables by which someone asks for provider logs:
// Terraform's own, and terraform-plugin-log's per logger.
var logSwitches = []string{
	"TF_LOG", "TF_LOG_PATH", "TF_LOG_PROVIDER", "TF_LOG_PROVIDER_CRYPTOKEYS",
	"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK",
}

// quietLoggers are the levels set when no log was asked for: the SDK root
// logger, its proto and framework subsystems, and the provider's own
// (tflog) logger.
var quietLoggers = []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK", "TF_LOG_PROVIDER_CRYPTOKEYS"}

// QuietUnlessAsked turns the loggers off when none of logSwitches is set.
// It reports whether it did.
func QuietUnlessAsked(getenv func(string) string, setenv func(string, string) error) bool {
	for _, k := range logSwitches {
		if getenv(k) != "" {
			return false
		}
	}
	for _, k := range quietLoggers {
		_ = setenv(k, "off")
	}
	return true
}

// gcPercent is the provider's GOGC unless the environment sets one. A
// provider process lives for one Terraform command with a heap of a few
// megabytes, and the framework allocates some 680 kB for every resource it
// plans (schema walks box each attribute at every path step): at Go's
// default of 100 the collector ran through a sixth of a 200-key plan's CPU.
// Collecting at four times the live heap instead costs a few megabytes.
const gcPercent = 400

// LessGC sets gcPercent unless GOGC is set.
func LessGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// ProfileEnv names a directory: when set, each provider process writes
// provider-<pid>.cpu there (its user plus system CPU time in microseconds)
// when Terraform stops it, and the real provider a CPU profile beside it,
// provider-<pid>.pprof. For profiling only; the bench harness sets it to
// measure tf_provider_cpu_ms_per_resource.
const ProfileEnv = "CK_PROVIDER_PROFILE_DIR"

// ProfileBase is dir/provider-<pid>, the name, less its extension, of the
// files this process writes into ProfileEnv's directory.
func ProfileBase(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("provider-%d", os.Getpid()))
}

// WriteCPUTime writes the process's user plus system CPU time so far, in
// microseconds, to ProfileBase(dir)+".cpu".
func WriteCPUTime(dir string) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	_ = os.WriteFile(ProfileBase(dir)+".cpu", []byte(fmt.Sprintf("%d\n", cpu.Microseconds())), 0o600) // #nosec G703 -- the directory the person profiling (or the bench harness) names, for profiling only
}
