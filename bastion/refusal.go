package bastion

import "errors"

// codeRejected is the audit code of a refusal whose cause names none.
const codeRejected = "rejected"

// RefusalError is a Backend error that names the audit code of the refusal
// it causes, such as "certificate_mismatch", so that the session.rejected
// record says why by code, not only in its message.
type RefusalError struct {
	Code string
	Err  error
}

func (e *RefusalError) Error() string { return e.Err.Error() }

func (e *RefusalError) Unwrap() error { return e.Err }

// refusalCode is the audit code for a refusal caused by err.
func refusalCode(err error) string {
	var re *RefusalError
	if errors.As(err, &re) && re.Code != "" {
		return re.Code
	}
	return codeRejected
}
