// Package wire is the contract every speaker of the engine's API shares:
// the engine (vaultplugin), the local verifier, the gateway, the Terraform
// provider, the scanner and the benchmark harness.
//
// It holds the verify codes, the typed request and response of verify with
// their JSON names, the header a verify read carries the key in, the
// revocations feed and usage report shapes, the signing message with the
// client-side signing helpers for hmac and ed25519 keys, and the rules for
// names, scopes and labels (environment and prefix rules are the key
// format's, in keyformat). Nothing outside this package spells those
// strings; TestWireLiteralsLiveHere checks it.
//
// Why a package beside keyformat rather than inside it: keyformat is the key
// codec, allocation-free and fuzzed, with no dependency beyond the standard
// library's CRC, that a secret scanner imports to find keys in text. What is
// here is the API around the keys: JSON shapes and validation rules that a
// scanner does not need and that change when the API grows, while the key
// format must not change at all. Both are standard library only, so a
// client that speaks to the engine imports both and nothing of Vault.
//
// Encoding: the engine answers through logical.Response, whose Data is a
// map[string]any, so each response type has a Data method that builds that
// map directly (no reflection: verify is the engine's hot path). Its keys
// are the struct's JSON names; TestDataMatchesJSON keeps the two the same.
// Clients decode with Decode, once, into the typed struct.
package wire
