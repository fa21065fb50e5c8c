// Package vaultplugin is the cryptokeys Vault secrets engine: it issues API
// keys as leased secrets, verifies them on every request, rotates them with
// overlap and revokes them on expiry, on demand or in bulk.
package vaultplugin

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// Version is the engine's version, set at build time with
// -ldflags "-X github.com/cryptokeys/terraform-provider-cryptokeys/vaultplugin.Version=v1.2.3".
// Vault shows it in `vault plugin list` and `vault secrets list -detailed`.
var Version = "v0.0.0-dev"

// operationPrefix names the engine in Vault's generated OpenAPI operation IDs.
const operationPrefix = "cryptokeys"

const backendHelp = `
The cryptokeys secrets engine issues, leases, verifies, rotates and revokes
API keys for crypto API services. Keys are generated inside the engine,
leased with a TTL, scoped to an environment and a set of scopes, and stored
only as a keyed hash (bearer keys) or barrier-encrypted (signing keys).
API gateways call "verify" on every request.

A key that reaches its end (expiry, or its lease running out at or after
it) is recorded as expired, never as revoked, whoever notices first. An
explicit revocation records revoked_at, revoke_reason and revoked_by: the
calling token's display name and entity for keys/<key_id> delete, revoke/*
and rotate; for a lease revocation (vault lease revoke, or the revocation of
the token that created the lease) Vault 1.13 names no requester to the
engine, so revoked_by is "vault lease manager" and the audit log's
sys/leases/revoke entry names the token.
`

// Factory is the logical.Factory Vault calls to create a mount of the engine.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	return newMountedBackend(ctx, conf, time.Now)
}

// newMountedBackend is Factory with the engine's clock as a parameter, so
// unit tests build a mount exactly as Vault does, fake clock aside.
func newMountedBackend(ctx context.Context, conf *logical.BackendConfig, now func() time.Time) (*backend, error) {
	now = neverBackwards(now)
	b := newBackend(now)
	b.feed.epoch = feedEpoch(conf.BackendUUID)
	c := *conf
	if c.System != nil {
		c.System = newSystemViewMemo(c.System, now)
	}
	if err := b.Setup(ctx, &c); err != nil {
		return nil, err
	}
	b.storage = conf.StorageView
	return b, nil
}

type backend struct {
	*framework.Backend

	// now is the engine's clock; tests inject a fake one.
	now func() time.Time

	// roleLocks serialise issuance per role so max_active_keys holds under
	// concurrency; keyLocks serialise changes to one key record.
	roleLocks []*locksutil.LockEntry
	keyLocks  []*locksutil.LockEntry

	configMu      sync.RWMutex
	config        *engineConfig // cached; nil until loaded
	configWriteMu sync.Mutex
	// prefixMu keeps key_prefix still while a key is issued: creds holds it
	// shared from reading the prefix to writing the record, a config write
	// naming key_prefix holds it alone from its check that no key exists to
	// storing the config. Without it an issue that read the old prefix could
	// write its record after the check, and its key would never verify.
	// Taken after configWriteMu, never before it.
	prefixMu sync.RWMutex

	// storage is kept for Clean, which Vault calls without a request.
	storage logical.Storage

	// cache holds key records for verify, so the hot path reads storage
	// only on a miss. Every change to a record goes through putKey/dropKey,
	// and Invalidate keeps other nodes' caches honest.
	cache *storeCache[*keyRecord]
	// roles holds roles as decoded from storage for creds and rotate, by
	// role name. A cached role is never changed: getRole hands out copies.
	roles *storeCache[*role]

	// feed numbers and writes the revocations feed (feed.go).
	feed *feedLog

	// marks are the bulk revocation watermarks (bulk_watermark.go); bulk
	// runs the jobs that complete them (bulk_job.go).
	marks markSet
	bulk  *bulkRunner

	usage     *usageTracker
	limiter   *rateLimiters
	anomalies *anomalyTracker
	// notFound remembers key_ids verify found no record for (notfound.go).
	notFound *notFoundCache

	// lastTidy is when periodic last ran tidy on this node.
	tidyMu   sync.Mutex
	lastTidy time.Time
	// suspects are the key index entries tidy found without a record, by
	// when it first did (sweepIndex); sweepMu guards them and keeps two
	// sweeps (a tidy write during periodic's) from running together.
	sweepMu  sync.Mutex
	suspects map[string]time.Time
}

func newBackend(now func() time.Time) *backend {
	b := &backend{
		now:       now,
		roleLocks: locksutil.CreateLocks(),
		keyLocks:  locksutil.CreateLocks(),
		cache:     newStoreCache[*keyRecord](defaultCacheSize),
		roles:     newStoreCache[*role](roleCacheSize),
		feed:      newFeedLog(),
		bulk:      newBulkRunner(),
		usage:     newUsageTracker(),
		limiter:   newRateLimiters(),
		anomalies: newAnomalyTracker(),
		notFound:  newNotFoundCache(notFoundSize, notFoundTTL),
	}
	b.Backend = &framework.Backend{
		Help:           strings.TrimSpace(backendHelp),
		BackendType:    logical.TypeLogical,
		RunningVersion: Version,
		PathsSpecial: &logical.Paths{
			// The pepper lives in config and HMAC secrets in key records:
			// seal-wrap both where the seal supports it.
			SealWrapStorage: []string{configStoragePath, keyStoragePrefix},
		},
		Paths: framework.PathAppend(
			pathInfo(b),
			pathConfig(b),
			pathRoles(b),
			pathCreds(b),
			pathKeys(b),
			pathRotate(b),
			pathVerify(b),
			pathRevoke(b),
			pathMonitor(b),
			pathTidy(b),
			pathRevocations(b),
			pathUsage(b),
		),
		Secrets: []*framework.Secret{secretAPIKey(b)},
		// A rotation that stops half way is undone (path_rotate.go).
		WALRollback:       b.walRollback,
		WALRollbackMinAge: walRollbackMinAge,
		Invalidate:        b.invalidate,
		PeriodicFunc:      b.periodic,
		InitializeFunc:    b.initialize,
		Clean:             b.clean,
	}
	return b
}

// invalidate runs on nodes that did not make a storage change (standbys,
// performance replicas) so their caches never serve a stale record.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configStoragePath:
		b.configMu.Lock()
		b.config = nil
		b.configMu.Unlock()
	case strings.HasPrefix(key, keyStoragePrefix):
		b.cache.drop(strings.TrimPrefix(key, keyStoragePrefix))
		b.notFound.drop(strings.TrimPrefix(key, keyStoragePrefix))
	case strings.HasPrefix(key, roleStoragePrefix):
		b.roles.drop(strings.TrimPrefix(key, roleStoragePrefix))
	case strings.HasPrefix(key, revocationPrefix):
		b.feed.invalidated(strings.TrimPrefix(key, revocationPrefix))
	case strings.HasPrefix(key, watermarkPrefix):
		b.marks.invalidate()
	}
}

// periodic flushes in-memory usage counters and anomaly findings (verify
// never writes storage, so this is where they become durable) and tidies
// old records. Only nodes that may write run it. Vault runs PeriodicFunc
// about once a minute, which bounds how much usage a crash can lose.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	// A feed event whose write failed is written again even if no later
	// event comes to push it out.
	if err := b.feed.retryPending(ctx, req.Storage); err != nil {
		b.Logger().Warn("writing a pending revocations feed event", "error", err)
	}
	// A bulk revocation job left unfinished (a restart, a failover) is
	// taken up again.
	b.resumeBulkJobs(req.Storage)
	if err := b.flushUsage(ctx, req.Storage, usageFlushBatch); err != nil {
		return err
	}
	return b.periodicTidy(ctx, req.Storage)
}

// clean runs when the mount is unloaded (plugin reload, seal, shutdown):
// flush usage recorded since the last periodic run so a clean stop loses none
// (within the time it gets: keys waiting longest go first).
// The context Vault passes may already be done; the flush gets its own.
func (b *backend) clean(_ context.Context) {
	b.bulk.stop()
	if b.storage == nil || !b.WriteSafeReplicationState() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.flushUsage(ctx, b.storage, 0); err != nil {
		b.Logger().Warn("flushing usage on shutdown", "error", err)
	}
}

// neverBackwards is the engine's clock: the wall clock, held at the latest
// time it has shown whenever the wall clock steps back (NTP, a VM restored
// or migrated). Expiry, grace ends and rate windows compare stored wall
// times with it, so a step back must not make a key that has ended live
// again on this node. (Ended keys do not read it at all; see keyRecord.)
func neverBackwards(now func() time.Time) func() time.Time {
	var mu sync.Mutex
	latest := now() // from the mount's start: a step back after it is seen
	return func() time.Time {
		t := now()
		mu.Lock()
		defer mu.Unlock()
		if t.Before(latest) {
			return latest
		}
		latest = t
		return t
	}
}
