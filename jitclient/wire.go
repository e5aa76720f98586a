package jitclient

// Wire values of the API that the workflows branch on. They are kept here,
// in one place, until package api exports them (api.StateApproved, ...).
const (
	stateApproved  = "approved"
	stateDenied    = "denied"
	stateExpired   = "expired"
	stateCancelled = "cancelled"
	stateIssued    = "issued"

	decisionApprove = "approve"

	codeKeyNotEnrolled = "key_not_enrolled"
)
