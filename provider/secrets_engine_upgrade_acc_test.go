package provider

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/hashicorp/vault/api"
)

// planCheckFunc is a plan check from a function (here: to note when the
// apply of a step begins).
type planCheckFunc func(context.Context, plancheck.CheckPlanRequest, *plancheck.CheckPlanResponse)

func (f planCheckFunc) CheckPlan(ctx context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	f(ctx, req, resp)
}

// verifyLoop verifies one key in a loop, as a gateway does, and keeps
// every answer with when its request started and ended.
type verifyLoop struct {
	mu      sync.Mutex
	answers []verifyAnswer
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type verifyAnswer struct {
	started, done time.Time
	code          string
	err           error
}

func startVerifyLoop(t *testing.T, srv *vaulttest.Server, mount, apiKey string) *verifyLoop {
	cfg := api.DefaultConfig()
	cfg.Address, cfg.MaxRetries, cfg.Timeout = srv.Addr, 0, 10*time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(srv.Token)
	ctx, cancel := context.WithCancel(context.Background())
	l := &verifyLoop{cancel: cancel}
	t.Cleanup(l.stop)
	for range 2 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				a := verifyAnswer{started: time.Now()}
				a.code, a.err = verifyCode(c, mount, apiKey, nil)
				a.done = time.Now()
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
				if a.err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

func (l *verifyLoop) stop() { l.cancel(); l.wg.Wait() }

func (l *verifyLoop) finish() []verifyAnswer {
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answers
}

// TestAccSecretsEngine_upgradeAndDowngradeThroughPluginVersion moves a
// mount from v0.1.0 to v0.2.0 and back by changing the
// cryptokeys_secrets_engine resource's plugin_version, while a key of the
// configuration is verified in a loop. Each move is an in-place update (the
// mount, its role and its key stay), Vault then runs the new build, the
// key answers VALID throughout (requests may fail only while the mount
// reloads, and a bounded number of them), a key revoked before the move
// stays REVOKED, the key's lease renews through the new build, and usage
// the old build counted survives the move.
func TestAccSecretsEngine_upgradeAndDowngradeThroughPluginVersion(t *testing.T) {
	skipUnlessAcc(t)
	srv := vaulttest.Start(t) // its own catalog: the shared server's other tests see no second version
	dir := t.TempDir()
	v1 := srv.RegisterPlugin(t, vaulttest.BuildPlugin(t, "v0.1.0", dir))
	v2 := srv.RegisterPlugin(t, vaulttest.BuildPlugin(t, "v0.2.0", dir))
	mount := "ck-upgrade"
	config := func(version string) string {
		return providerBlock(srv, mount) + fmt.Sprintf(`
resource "cryptokeys_secrets_engine" "e" {
  path           = %q
  plugin_version = %q
}

resource "cryptokeys_role" "app" {
  mount       = cryptokeys_secrets_engine.e.path
  name        = "app"
  environment = "prod"
  ttl         = "1h"
  max_ttl     = "4h"
}

resource "cryptokeys_api_key" "k" {
  mount = cryptokeys_secrets_engine.e.path
  role  = cryptokeys_role.app.name
}
`, mount, version)
	}

	var apiKey, keyID, leaseID, revokedKey string
	var load *verifyLoop
	var applyAt time.Time
	var usedBefore int64
	noteApply := planCheckFunc(func(context.Context, plancheck.CheckPlanRequest, *plancheck.CheckPlanResponse) {
		applyAt = time.Now()
	})
	inPlace := []plancheck.PlanCheck{
		plancheck.ExpectResourceAction("cryptokeys_secrets_engine.e", plancheck.ResourceActionUpdate),
		plancheck.ExpectResourceAction("cryptokeys_role.app", plancheck.ResourceActionNoop),
		plancheck.ExpectResourceAction("cryptokeys_api_key.k", plancheck.ResourceActionNoop),
		noteApply,
	}
	// moved checks what the load saw across the move to version, then
	// starts a fresh load for the next step.
	moved := func(version string) resource.TestCheckFunc {
		return func(*terraform.State) error {
			if got := srv.RunningPluginVersion(t, mount); got != version {
				return fmt.Errorf("the mount runs %s after the apply, want %s", got, version)
			}
			if s, err := srv.Client.Logical().Read(mount + "/info"); err != nil || s == nil || s.Data["version"] != version {
				return fmt.Errorf("info after the apply: %v (%v), want version %s", s, err, version)
			}
			checkFrom := time.Now()
			time.Sleep(2 * time.Second) // the new build answers the load for a while
			answers := load.finish()
			var valid, failed int
			var counted int64 // VALID answers the old build gave before the apply, and the new one after it
			for _, a := range answers {
				switch {
				case a.err != nil:
					failed++
					if a.done.Before(applyAt) || a.started.After(checkFrom) {
						return fmt.Errorf("moving to %s: a verify failed outside the move: %v", version, a.err)
					}
				case a.code != "VALID":
					return fmt.Errorf("moving to %s: the live key verified %s (at %s, %s after the apply began)", version, a.code, a.done.Format(time.RFC3339Nano), a.done.Sub(applyAt).Round(time.Millisecond))
				default:
					valid++
					if a.done.Before(applyAt) || a.started.After(checkFrom) {
						counted++
					}
				}
			}
			t.Logf("moving to %s through plugin_version under load: %d verifies VALID, %d failed during the move", version, valid, failed)
			if valid == 0 || failed > 50 {
				return fmt.Errorf("moving to %s: %d verifies VALID, %d failed (at most 50 may, while the mount reloads)", version, valid, failed)
			}
			s, err := srv.Client.Logical().Read(mount + "/keys/" + keyID)
			if err != nil || s == nil {
				return fmt.Errorf("keys/%s after the move: %v", keyID, err)
			}
			used, _ := strconv.ParseInt(fmt.Sprint(s.Data["use_count"]), 10, 64)
			if used < usedBefore+counted {
				return fmt.Errorf("moving to %s: use_count %d, want at least %d (%d before the step, %d VALID answers counted by the builds on either side of the move)", version, used, usedBefore+counted, usedBefore, counted)
			}
			usedBefore = used
			if code, err := verifyCode(srv.Client, mount, revokedKey, nil); err != nil || code != "REVOKED" {
				return fmt.Errorf("a key revoked before the move verifies %s (%v), want REVOKED", code, err)
			}
			if s, err := srv.Client.Sys().Renew(leaseID, 3600); err != nil || s == nil || s.LeaseDuration <= 0 {
				return fmt.Errorf("renewing the key's lease through %s: %v", version, err)
			}
			load = startVerifyLoop(t, srv, mount, apiKey)
			return nil
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: config(v1),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("cryptokeys_secrets_engine.e", tfjsonpath.New("plugin_version"), knownvalue.StringExact(v1)),
				},
				Check: resource.ComposeTestCheckFunc(
					capture("cryptokeys_api_key.k", "api_key", &apiKey),
					capture("cryptokeys_api_key.k", "key_id", &keyID),
					capture("cryptokeys_api_key.k", "lease_id", &leaseID),
					func(*terraform.State) error {
						// A key revoked before the move, as an operator revokes one.
						s, err := srv.Client.Logical().Read(mount + "/creds/app")
						if err != nil || s == nil {
							return fmt.Errorf("issuing a second key: %v", err)
						}
						revokedKey, _ = s.Data["api_key"].(string)
						if _, err := srv.Client.Logical().Delete(fmt.Sprintf("%s/keys/%s", mount, s.Data["key_id"])); err != nil {
							return err
						}
						if code, err := verifyCode(srv.Client, mount, apiKey, nil); err != nil || code != "VALID" {
							return fmt.Errorf("the key on %s verifies %s (%v)", v1, code, err)
						}
						load = startVerifyLoop(t, srv, mount, apiKey)
						return nil
					},
				),
			},
			{
				// The upgrade.
				Config:           config(v2),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: inPlace},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("cryptokeys_secrets_engine.e", tfjsonpath.New("plugin_version"), knownvalue.StringExact(v2)),
				},
				Check: moved(v2),
			},
			{
				// The downgrade works too: both builds keep one storage layout.
				Config:           config(v1),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: inPlace},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("cryptokeys_secrets_engine.e", tfjsonpath.New("plugin_version"), knownvalue.StringExact(v1)),
				},
				Check: moved(v1),
			},
		},
	})
}
