// Package bench measures jitssh side by side with OpenSSH in the same run:
// certificate issuance through the HTTPS API against in-process signing and
// `ssh-keygen -s`, the recording bastion against OpenSSH's own ProxyJump
// (set-up latency, bulk throughput and recording footprint, typing latency
// under load, memory per idle session, 500 concurrent sessions), and search
// over recorded sessions. It holds only benchmarks; `make bench` runs them
// and docs/BENCHMARKS.md records the figures. Benchmarks report numbers
// with b.ReportMetric and never assert on timing.
package bench
