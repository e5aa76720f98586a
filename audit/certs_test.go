package audit

import (
	"context"
	"reflect"
	"testing"
)

// A certificate's extensions and critical options come back as they were
// written; empty ones come back nil.
func TestCertificatePermissions(t *testing.T) {
	forEngines(t, func(t *testing.T, openTest func(testing.TB) (*Store, string)) {
		tests := []struct {
			name string
			ext  map[string]string
			crit map[string]string
		}{
			{name: "none"},
			{name: "extensions", ext: map[string]string{"permit-pty": "", "permit-port-forwarding": ""}},
			{name: "critical options", ext: map[string]string{"permit-pty": ""},
				crit: map[string]string{"source-address": "10.0.0.0/8,192.168.1.0/24", "force-command": "uptime"}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := openTest(t)
				c := userCert(uint64(i + 1))
				c.Extensions, c.CriticalOptions = tt.ext, tt.crit
				mustDo(t, s, func(tx *Tx) error { return tx.InsertCertificate(c) })
				got, err := s.Certificate(context.Background(), c.Serial)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, c) {
					t.Errorf("Certificate = %+v, want %+v", got, c)
				}
				list, err := s.Certificates(context.Background(), CertificateFilter{})
				if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], c) {
					t.Errorf("Certificates = %+v, %v; want [%+v]", list, err, c)
				}
			})
		}
	})
}

// Certificates recorded before migration 3 had permit-pty, which policy
// always granted, and nothing else the store can know: user and target
// rows get exactly permit-pty, host rows nothing.
func TestCertificateMigrationBackfillsPTY(t *testing.T) {
	s, _ := openOld(t, migrations()[0], migrations()[1], "PRAGMA user_version = 2",
		"INSERT INTO certificates (serial, kind) VALUES (1, 'user'), (2, 'target'), (3, 'host')",
	)
	pty := map[string]string{"permit-pty": ""}
	for serial, want := range map[uint64]map[string]string{1: pty, 2: pty, 3: nil} {
		c, err := s.Certificate(context.Background(), serial)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.Extensions, want) || c.CriticalOptions != nil {
			t.Errorf("certificate %d (%s): extensions %v critical options %v, want %v and none", serial, c.Kind, c.Extensions, c.CriticalOptions, want)
		}
	}
}
