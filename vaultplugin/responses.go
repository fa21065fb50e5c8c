package vaultplugin

import (
	"net/http"
	"reflect"
	"strings"

	"github.com/cryptokeys/terraform-provider-cryptokeys/wire"
	"github.com/hashicorp/vault/sdk/framework"
)

// The response fields each operation declares (framework.Response in its
// PathOperation), so that Vault's OpenAPI document
// (sys/internal/specs/openapi) says what every path returns. The tests hold
// every response the engine gives to these (TestResponsesMatchDeclared):
// a field returned and not declared here, or declared with another type,
// fails them.

// okResponse is a 200 answer with these fields.
func okResponse(description string, fields map[string]*framework.FieldSchema) map[int][]framework.Response {
	return map[int][]framework.Response{http.StatusOK: {{Description: description, Fields: fields}}}
}

// noContent is a 204 answer: no body.
func noContent(description string) map[int][]framework.Response {
	return map[int][]framework.Response{http.StatusNoContent: {{Description: description}}}
}

// listed is a LIST answer: the keys, and with info what key_info holds.
func listed(description, info string) map[int][]framework.Response {
	f := map[string]*framework.FieldSchema{
		"keys": {Type: framework.TypeStringSlice, Description: "The names, sorted."},
	}
	if info != "" {
		f["key_info"] = &framework.FieldSchema{Type: framework.TypeMap, Description: info}
	}
	return okResponse(description, f)
}

// withFields merges field sets into one (later ones win).
func withFields(sets ...map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

func strField(d string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: d}
}
func intField(d string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeInt64, Description: d}
}
func floatField(d string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeFloat, Description: d}
}
func boolField(d string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeBool, Description: d}
}
func listField(d string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeStringSlice, Description: d}
}
func pairsField(d string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeKVPairs, Description: d}
}
func objectsField(d string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeSlice, Description: d}
}
func objectField(d string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeMap, Description: d}
}

// wireFields declares the fields of one of wire's reply types from its
// JSON names, so that the names stay spelled once (in wire).
func wireFields(v any, description func(name string) string) map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			out[name] = &framework.FieldSchema{Type: fieldType(f.Type), Description: description(name)}
		}
	}
	walk(reflect.TypeOf(v))
	return out
}

func fieldType(t reflect.Type) framework.FieldType {
	switch t.Kind() {
	case reflect.String:
		return framework.TypeString
	case reflect.Bool:
		return framework.TypeBool
	case reflect.Int, reflect.Int64, reflect.Uint64, reflect.Uint32, reflect.Int32:
		return framework.TypeInt64
	case reflect.Float64, reflect.Float32:
		return framework.TypeFloat
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return framework.TypeStringSlice
		}
		return framework.TypeSlice
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return framework.TypeKVPairs
		}
	}
	return framework.TypeMap
}

func describe(d map[string]string) func(string) string {
	return func(name string) string {
		if s, ok := d[name]; ok {
			return s
		}
		return strings.ReplaceAll(name, "_", " ") + "."
	}
}

var (
	infoResponseFields = map[string]*framework.FieldSchema{
		"version":      strField("Engine version."),
		"key_format":   objectField("The key format: pattern, default_prefix, key_id_length, secret_length, checksum_length, checksum."),
		"key_types":    listField("Key types roles may have."),
		"verify_codes": listField("Codes verify answers with."),
		"features":     listField("Features of this build."),
	}

	configResponseFields = map[string]*framework.FieldSchema{
		"key_prefix":    strField("Prefix of every key."),
		"default_ttl":   intField("Default key TTL, seconds (0: Vault's)."),
		"max_ttl":       intField("Longest key TTL, seconds (0: Vault's)."),
		"scopes":        listField("Scope catalog (empty: any)."),
		"environments":  listField("Allowed environments (empty: any)."),
		"signed_scopes": listField("Scopes only signed requests may use."),
		"retention":     intField("How long records of ended keys are kept, seconds."),
	}

	roleResponseFields = map[string]*framework.FieldSchema{
		"name":            strField("Role name."),
		"environment":     strField("Environment of the role's keys."),
		"scopes":          listField("Scopes of the role's keys."),
		"key_type":        strField("bearer, hmac or ed25519."),
		"ttl":             intField("Key TTL, seconds (0: the config's default)."),
		"max_ttl":         intField("Longest a key may live, seconds."),
		"allowed_cidrs":   listField("Source CIDRs the keys may be used from."),
		"rate_limit":      floatField("Requests per second per key (0: unlimited)."),
		"rate_burst":      intField("Token bucket size."),
		"max_active_keys": intField("Most live keys at once (0: unlimited)."),
		"recv_window":     intField("Signed request window, milliseconds."),
		"labels":          pairsField("Labels copied onto every key."),
		"description":     strField("Description."),
		"on_anomaly":      strField("none, flag or suspend."),
		"anomaly_rate":    floatField("Sustained requests per second above which a key is anomalous (0: off)."),
		"flag_new_source": boolField("Whether a new source IP is an anomaly."),
	}

	// issuedKeyResponseFields are creds' and rotate's: the key and its
	// secrets, once.
	issuedKeyResponseFields = map[string]*framework.FieldSchema{
		"api_key":       strField("The API key (shown once)."),
		"key_id":        strField("Public identifier of the key."),
		"name":          strField("Label of the key."),
		"role":          strField("Role it was issued from."),
		"environment":   strField("Environment."),
		"scopes":        listField("Scopes."),
		"key_type":      strField("bearer, hmac or ed25519."),
		"allowed_cidrs": listField("Source CIDRs it may be used from."),
		"labels":        pairsField("Labels."),
		"expires_at":    strField("When it stops verifying (RFC 3339)."),
		"secret_key":    strField("hmac keys: the signing secret (shown once)."),
		"private_key":   strField("ed25519 keys the engine generated: the private key, PKCS#8 PEM (shown once)."),
		"public_key":    strField("ed25519 keys: the public key, PEM."),
	}

	rotateResponseFields = withFields(issuedKeyResponseFields, map[string]*framework.FieldSchema{
		"previous_key_id":     strField("The key rotated out."),
		"previous_expires_at": strField("When the key rotated out stops verifying: the end of its grace (RFC 3339)."),
	})

	keyResponseFields = map[string]*framework.FieldSchema{
		"key_id":               strField("Public identifier."),
		"name":                 strField("Label."),
		"role":                 strField("Role it was issued from."),
		"environment":          strField("Environment."),
		"scopes":               listField("Scopes."),
		"key_type":             strField("bearer, hmac or ed25519."),
		"allowed_cidrs":        listField("Source CIDRs it may be used from."),
		"labels":               pairsField("Labels."),
		"status":               strField("active, suspended, revoked or expired."),
		"created_at":           strField("Issue time (RFC 3339)."),
		"created_by":           strField("Display name of the token that issued it."),
		"created_by_entity_id": strField("Entity that issued it."),
		"expires_at":           strField("When it stops verifying."),
		"max_expires_at":       strField("Latest its lease may be renewed to."),
		"revoked_at":           strField("Revocation time."),
		"revoked_by":           strField("Who revoked it."),
		"revoke_reason":        strField("Why."),
		"revoke_job":           strField("The bulk revocation job that revoked it."),
		"rotated_from":         strField("The key this one replaced."),
		"rotated_to":           strField("The key that replaced this one."),
		"last_used_at":         strField("Last successful verify."),
		"last_source_ip":       strField("Source IP of the last successful verify."),
		"use_count":            intField("Successful verifies."),
		"public_key":           strField("ed25519 keys: the public key, PEM."),
		"anomalies":            objectsField("Anomalies seen: kind, first_seen, last_seen, count."),
		"suspended":            boolField("Whether verify refuses it as SUSPENDED."),
		"suspended_at":         strField("When it was suspended."),
		"resumed_at":           strField("When a suspension was last lifted."),
		"resumed_by":           strField("Who lifted it."),
		"resume_reason":        strField("Why."),
		"source_ips":           listField("Source IPs it was used from (the most recent)."),
	}

	verifyResponseFields = wireFields(wire.VerifyResponse{}, describe(map[string]string{
		"valid":   "Whether the key may do what was asked.",
		"code":    "One of the verify codes (info's verify_codes).",
		"message": "Why, for people.",
	}))

	feedResponseFields = wireFields(wire.FeedReply{}, describe(map[string]string{
		"events":   "Events after the cursor: seq, key_id, kind, at, expires_at (and role, environment, revoked_before for bulk revocations).",
		"cursor":   "The cursor to pass as since next.",
		"reset":    "The cursor could not be continued: drop what is cached and go on from cursor.",
		"wait_max": "The longest wait this engine holds a read for, seconds: an engine that blocks says so.",
	}))

	usageResponseFields = wireFields(wire.UsageReply{}, describe(map[string]string{
		"accepted": "Reports counted.",
		"rejected": "Reports refused (unknown key, bad ticket, stale).",
	}))

	revokeLeakedResponseFields = map[string]*framework.FieldSchema{
		"revoked":               listField("key_ids revoked."),
		"revoked_count":         intField("How many were revoked."),
		"unknown_count":         intField("Well-formed keys this engine does not know."),
		"already_revoked_count": intField("Keys that were revoked already."),
		"bad_checksum_count":    intField("Key-shaped strings whose checksum fails."),
	}

	bulkJobResponseFields = map[string]*framework.FieldSchema{
		"job_id":         strField("The job."),
		"scope":          strField("role or environment."),
		"target":         strField("The role or environment."),
		"revoked_before": strField("Keys issued before this are revoked (RFC 3339)."),
		"revoked_by":     strField("Who started the job."),
		"reason":         strField("Why."),
		"state":          strField("running or done."),
		"listed":         intField("Keys listed so far."),
		"done":           intField("Keys handled."),
		"left":           intField("Keys still to handle."),
		"revoked":        intField("Keys revoked."),
		"skipped":        intField("Keys already ended or issued after."),
		"errors":         intField("Keys that failed and will be retried."),
		"last_error":     strField("The last failure."),
		"failed_key_ids": listField("Keys that failed."),
		"started_at":     strField("Start time."),
		"finished_at":    strField("End time."),
	}

	bulkRevokeResponseFields = withFields(bulkJobResponseFields, map[string]*framework.FieldSchema{
		"status_path": strField("Where to read the job's progress."),
		"key_ids":     listField("The keys revoked, when the job finished inline and revoked few enough to list."),
	})

	tidyResponseFields = map[string]*framework.FieldSchema{
		"scanned":               intField("Records looked at."),
		"removed":               intField("Records dropped."),
		"index_entries_removed": intField("Index entries swept: key index entries found without a record on two runs at least an hour apart, and anomaly index entries without a record."),
	}
)
