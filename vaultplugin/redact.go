package vaultplugin

import (
	"context"
	"errors"
	"net/http"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/redact"
	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// secretLike matches what could be key material inside a message: PEM
// blocks, and runs of 24 or more base62 characters (a key's key_id, secret
// and checksum are one run of 50; an hmac secret_key is 64).
var secretLike = redact.Runs(`[0-9A-Za-z]{24,}`)

// redactSecrets removes possible key material from a message.
func redactSecrets(s string) string { return secretLike.Text(s) }

// HandleRequest is the framework's, with key material kept out of the
// errors a request gets back. Validation errors (the engine's and the
// framework's own, such as `invalid duration "<value>"`) repeat the value
// that broke a rule, and a client that puts a key or secret in the wrong
// field would see it repeated in the error, in Vault's audit log (which
// records error text in clear) and in whatever logs the client keeps.
// The message still names the field and the rule. (verify's message is
// not an error: what it quotes goes through printable, so a successful
// verify pays nothing here but one map lookup.)
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	resp, err := b.Backend.HandleRequest(ctx, req)
	if resp != nil && resp.Data != nil {
		if s, ok := resp.Data["error"].(string); ok {
			resp.Data["error"] = redactSecrets(s)
		}
	}
	if err != nil {
		if msg := redactSecrets(err.Error()); msg != err.Error() {
			err = redactedError(err, msg)
		}
	}
	return resp, err
}

// HandleExistenceCheck is the framework's, with key material kept out of
// its errors: it validates the request's fields before the handler runs.
func (b *backend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (checkFound, exists bool, err error) {
	checkFound, exists, err = b.Backend.HandleExistenceCheck(ctx, req)
	if err != nil {
		if msg := redactSecrets(err.Error()); msg != err.Error() {
			err = redactedError(err, msg)
		}
	}
	return checkFound, exists, err
}

// redactedError is err with the message msg and the same HTTP status.
func redactedError(err error, msg string) error {
	var coded logical.HTTPCodedError
	var user errutil.UserError
	switch {
	case errors.As(err, &user):
		return errutil.UserError{Err: msg}
	case errors.As(err, &coded):
		return logical.CodedError(coded.Code(), msg)
	case errors.Is(err, logical.ErrInvalidRequest):
		return logical.CodedError(http.StatusBadRequest, msg)
	case errors.Is(err, logical.ErrPermissionDenied):
		return logical.CodedError(http.StatusForbidden, msg)
	case errors.Is(err, logical.ErrUnsupportedPath), errors.Is(err, logical.ErrUnsupportedOperation):
		return err // fixed texts: nothing to redact
	}
	return errors.New(msg)
}
