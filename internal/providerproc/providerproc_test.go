package providerproc

import (
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestQuietUnlessAsked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		quiet bool
	}{
		{"nothing asked", map[string]string{"HOME": "/root"}, true},
		{"TF_LOG", map[string]string{"TF_LOG": "DEBUG"}, false},
		{"TF_LOG_PATH", map[string]string{"TF_LOG_PATH": "/tmp/tf.log"}, false},
		{"TF_LOG_PROVIDER", map[string]string{"TF_LOG_PROVIDER": "TRACE"}, false},
		{"this provider", map[string]string{"TF_LOG_PROVIDER_CRYPTOKEYS": "DEBUG"}, false},
		{"SDK", map[string]string{"TF_LOG_SDK_FRAMEWORK": "TRACE"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := map[string]string{}
			got := QuietUnlessAsked(func(k string) string { return tc.env[k] }, func(k, v string) error { set[k] = v; return nil })
			if got != tc.quiet {
				t.Fatalf("quiet = %v, want %v", got, tc.quiet)
			}
			if !tc.quiet {
				if len(set) != 0 {
					t.Fatalf("changed %v although logs were asked for", set)
				}
				return
			}
			for _, k := range quietLoggers {
				// The value must be one terraform-plugin-log reads as off.
				if hclog.LevelFromString(set[k]) != hclog.Off {
					t.Errorf("%s = %q, not off", k, set[k])
				}
			}
		})
	}
}
