package policy

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseSchedule: schedule strings come from the policy file. The
// parser never panics; what it accepts is a non-empty window inside one
// day, prints back as written (whitespace collapsed) and parses again to
// the same schedule, and Contains keeps its bounds: the first minute of
// the window is in on every listed day, the end minute is out, and no
// minute of an unlisted day is in. Seeds: testdata/fuzz/FuzzParseSchedule.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{
		"Mon-Fri 08:00-18:00 Europe/Berlin", "Sun 00:00-24:00 UTC", "Fri-Mon 22:00-23:59 America/New_York",
		"Mon,Wed,Fri 09:30-10:00 Asia/Kolkata", "Sat-Fri 00:00-00:01 UTC", "Mon-Mon 01:00-02:00 UTC",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sch, err := ParseSchedule(s)
		if err != nil {
			if sch != nil || !strings.HasPrefix(err.Error(), "schedule ") {
				t.Fatalf("ParseSchedule(%q) = %v, %v: want nil and an error naming the schedule", s, sch, err)
			}
			return
		}
		if sch.start < 0 || sch.start >= sch.end || sch.end > 24*60 || sch.days == [7]bool{} || sch.loc == nil {
			t.Fatalf("ParseSchedule(%q) accepted an empty or impossible window: %+v", s, sch)
		}
		if sch.String() != strings.Join(strings.Fields(s), " ") {
			t.Fatalf("String() = %q, want %q", sch.String(), strings.Join(strings.Fields(s), " "))
		}
		again, err := ParseSchedule(sch.String())
		if err != nil || again.days != sch.days || again.start != sch.start || again.end != sch.end || again.loc.String() != sch.loc.String() {
			t.Fatalf("%q does not parse back the same: %+v, %v", sch.String(), again, err)
		}
		checkScheduleBounds(t, sch)
	})
}

// checkScheduleBounds checks Contains at the window's edges on each day of
// one week in the schedule's zone (skipping instants a DST gap moves).
func checkScheduleBounds(t *testing.T, sch *Schedule) {
	t.Helper()
	at := func(day time.Time, minute int) (time.Time, bool) {
		x := time.Date(day.Year(), day.Month(), day.Day(), minute/60, minute%60, 0, 0, sch.loc)
		return x, x.Hour()*60+x.Minute() == minute && x.Day() == day.Day()
	}
	for i := range 7 {
		day := time.Date(2026, 11, 23+i, 12, 0, 0, 0, sch.loc)
		listed := sch.days[day.Weekday()]
		if x, ok := at(day, sch.start); ok && sch.Contains(x) != listed {
			t.Fatalf("%q: Contains(%s) at the start = %t, want %t", sch, x, !listed, listed)
		}
		if x, ok := at(day, sch.end); ok && sch.end < 24*60 && sch.Contains(x) {
			t.Fatalf("%q: Contains(%s) at the end minute = true", sch, x)
		}
		if x, ok := at(day, sch.end-1); ok && !listed && sch.Contains(x) {
			t.Fatalf("%q: Contains(%s) on an unlisted day = true", sch, x)
		}
	}
	if (*Schedule)(nil).Contains(time.Now()) {
		t.Fatal("a nil schedule contains now")
	}
}
