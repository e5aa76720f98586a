package policy

import "testing"

func TestDemoParses(t *testing.T) {
	p, err := Parse("demo.yaml", Demo())
	if err != nil {
		t.Fatalf("Parse(Demo()) = %v", err)
	}
	for _, name := range []string{"alice", "bob", "carol", "secops-admin", "auditor"} {
		if _, ok := p.User(name); !ok {
			t.Errorf("demo policy lacks user %q", name)
		}
	}
	if !p.IsAdmin("secops-admin") || p.IsAdmin("alice") {
		t.Errorf("IsAdmin: secops-admin=%v alice=%v, want true false", p.IsAdmin("secops-admin"), p.IsAdmin("alice"))
	}
	if !p.IsAuditor("auditor") || p.IsAuditor("bob") {
		t.Errorf("IsAuditor: auditor=%v bob=%v, want true false", p.IsAuditor("auditor"), p.IsAuditor("bob"))
	}
	d := Demo()
	d[0] = 'X'
	if Demo()[0] == 'X' {
		t.Error("Demo returned shared bytes")
	}
}
