package main

// API error codes that jit gives hints for. They are kept here, in one
// place, until package api exports them (api.CodeUnauthenticated, ...).
const (
	codeUnauthenticated  = "unauthenticated"
	codeAuditUnavailable = "audit_unavailable"
	codeNotAuditor       = "not_auditor"
	codeNotAdmin         = "not_admin"
)

// Decisions of an approval, as the API spells them.
const (
	decisionApprove = "approve"
	decisionDeny    = "deny"
)
