package api

// Codes of ephemeral accounts on the daemon side (issue 13, acctd).
const (
	// CodeAccountNameTaken refuses an ephemeral request when no free login
	// could be made for it on the host; retrying makes a new one.
	CodeAccountNameTaken = "account_name_taken"
)
