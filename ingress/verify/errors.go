package verify

// Reason codes carried by [Error]. They are stable: the ingest handler puts
// them in 401 responses and audit entries, and operators alert on them.
const (
	ReasonUnknownProvider    = "unknown_provider"
	ReasonNoSecrets          = "no_secrets"
	ReasonMissingSignature   = "missing_signature"
	ReasonMalformedSignature = "malformed_signature"
	ReasonSignatureMismatch  = "signature_mismatch"
	ReasonTimestampMissing   = "timestamp_missing"
	ReasonTimestampMalformed = "timestamp_malformed"
	ReasonTimestampSkew      = "timestamp_skew"
)

// Error is the only error type Verify returns. Reason is one of the Reason
// constants; Message is a short human explanation that never contains secret
// material or echoes request bytes.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string {
	return "verify: " + e.Reason + ": " + e.Message
}

// Is reports whether target is an *Error with the same Reason, so that
// errors.Is(err, verify.ErrTimestampSkew) works whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// Sentinels for errors.Is, one per Reason. Verify returns fresh values, never
// these, so callers cannot mutate each other's errors.
var (
	ErrUnknownProvider    = &Error{Reason: ReasonUnknownProvider, Message: "unknown provider"}
	ErrNoSecrets          = &Error{Reason: ReasonNoSecrets, Message: "no active secret"}
	ErrMissingSignature   = &Error{Reason: ReasonMissingSignature, Message: "signature header missing"}
	ErrMalformedSignature = &Error{Reason: ReasonMalformedSignature, Message: "signature header malformed"}
	ErrSignatureMismatch  = &Error{Reason: ReasonSignatureMismatch, Message: "signature does not match any active secret"}
	ErrTimestampMissing   = &Error{Reason: ReasonTimestampMissing, Message: "timestamp missing"}
	ErrTimestampMalformed = &Error{Reason: ReasonTimestampMalformed, Message: "timestamp is not a decimal Unix time"}
	ErrTimestampSkew      = &Error{Reason: ReasonTimestampSkew, Message: "timestamp outside the allowed window"}
)

func fail(reason, msg string) error {
	return &Error{Reason: reason, Message: msg}
}
