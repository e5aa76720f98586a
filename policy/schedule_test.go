package policy

import (
	"strings"
	"testing"
	"time"
)

func TestScheduleContains(t *testing.T) {
	utc := func(y int, m time.Month, d, hh, mm, ss int) time.Time {
		return time.Date(y, m, d, hh, mm, ss, 0, time.UTC)
	}
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		schedule string
		at       time.Time
		want     bool
	}{
		// 2026-11-24 is a Tuesday; Berlin is UTC+1 in November.
		{name: "inside office hours", schedule: "Mon-Fri 08:00-18:00 Europe/Berlin", at: utc(2026, 11, 24, 9, 0, 0), want: true},
		{name: "start is inclusive", schedule: "Mon-Fri 08:00-18:00 Europe/Berlin", at: utc(2026, 11, 24, 7, 0, 0), want: true},
		{name: "one second before start", schedule: "Mon-Fri 08:00-18:00 Europe/Berlin", at: utc(2026, 11, 24, 6, 59, 59), want: false},
		{name: "last second before end", schedule: "Mon-Fri 08:00-18:00 Europe/Berlin", at: utc(2026, 11, 24, 16, 59, 59), want: true},
		{name: "end is exclusive", schedule: "Mon-Fri 08:00-18:00 Europe/Berlin", at: utc(2026, 11, 24, 17, 0, 0), want: false},
		{name: "UTC hour that is outside in Berlin", schedule: "Mon-Fri 08:00-18:00 Europe/Berlin", at: utc(2026, 11, 24, 17, 30, 0), want: false},
		{name: "saturday", schedule: "Mon-Fri 08:00-18:00 Europe/Berlin", at: utc(2026, 11, 28, 10, 0, 0), want: false},
		// 2026-07-07 is a Tuesday; Berlin is UTC+2 in summer.
		{name: "summer time shifts the window", schedule: "Mon-Fri 08:00-18:00 Europe/Berlin", at: utc(2026, 7, 7, 6, 30, 0), want: true},
		{name: "same UTC time in winter is outside", schedule: "Mon-Fri 08:00-18:00 Europe/Berlin", at: utc(2026, 11, 24, 6, 30, 0), want: false},
		// Friday 23:30 UTC is Saturday 00:30 in Berlin.
		{name: "day judged in the zone not in UTC", schedule: "Fri 00:00-24:00 Europe/Berlin", at: utc(2026, 11, 27, 23, 30, 0), want: false},
		{name: "thursday UTC is friday in Berlin", schedule: "Fri 00:00-24:00 Europe/Berlin", at: utc(2026, 11, 26, 23, 30, 0), want: true},
		{name: "whole day up to midnight", schedule: "Sun 00:00-24:00 UTC", at: utc(2026, 11, 29, 23, 59, 59), want: true},
		{name: "next day after midnight", schedule: "Sun 00:00-24:00 UTC", at: utc(2026, 11, 30, 0, 0, 0), want: false},
		{name: "wrapping day range", schedule: "Fri-Mon 00:00-24:00 UTC", at: utc(2026, 11, 29, 12, 0, 0), want: true},
		{name: "outside wrapping day range", schedule: "Fri-Mon 00:00-24:00 UTC", at: utc(2026, 11, 25, 12, 0, 0), want: false},
		{name: "day list", schedule: "Mon,Wed,Fri 09:00-17:00 UTC", at: utc(2026, 11, 25, 12, 0, 0), want: true},
		{name: "day not in list", schedule: "Mon,Wed,Fri 09:00-17:00 UTC", at: utc(2026, 11, 24, 12, 0, 0), want: false},
		{name: "time given in another zone", schedule: "Tue 08:00-09:00 Asia/Tokyo", at: time.Date(2026, 11, 23, 18, 30, 0, 0, newYork), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.schedule)
			if err != nil {
				t.Fatalf("ParseSchedule(%q) = %v", tt.schedule, err)
			}
			if got := s.Contains(tt.at); got != tt.want {
				t.Errorf("%q Contains(%v) = %v, want %v", tt.schedule, tt.at.In(s.loc), got, tt.want)
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct {
		name     string
		schedule string
		wantFrag string
	}{
		{name: "empty", schedule: "", wantFrag: "want \"DAYS HH:MM-HH:MM ZONE\""},
		{name: "no zone", schedule: "Mon-Fri 08:00-18:00", wantFrag: "want \"DAYS"},
		{name: "extra field", schedule: "Mon-Fri 08:00-18:00 UTC now", wantFrag: "want \"DAYS"},
		{name: "lower-case day", schedule: "mon-fri 08:00-18:00 UTC", wantFrag: `day "mon"`},
		{name: "unknown day", schedule: "Mon-Fry 08:00-18:00 UTC", wantFrag: `day "Fry"`},
		{name: "empty day", schedule: "Mon,,Fri 08:00-18:00 UTC", wantFrag: `day ""`},
		{name: "day twice", schedule: "Mon-Fri,Wed 08:00-18:00 UTC", wantFrag: "day Wed listed twice"},
		{name: "one-digit hour", schedule: "Mon 8:00-18:00 UTC", wantFrag: `time "8:00"`},
		{name: "hour 25", schedule: "Mon 08:00-25:00 UTC", wantFrag: `time "25:00"`},
		{name: "minute 60", schedule: "Mon 08:60-09:00 UTC", wantFrag: `time "08:60"`},
		{name: "after 24:00", schedule: "Mon 08:00-24:01 UTC", wantFrag: `time "24:01"`},
		{name: "signed minute", schedule: "Mon 08:+1-09:00 UTC", wantFrag: `time "08:+1"`},
		{name: "no range", schedule: "Mon 08:00 UTC", wantFrag: `time range "08:00"`},
		{name: "start after end", schedule: "Mon 18:00-08:00 UTC", wantFrag: "start must be before end"},
		{name: "empty window", schedule: "Mon 08:00-08:00 UTC", wantFrag: "start must be before end"},
		{name: "start at 24:00", schedule: "Mon 24:00-24:00 UTC", wantFrag: "before 24:00"},
		{name: "unknown zone", schedule: "Mon 08:00-09:00 Mars/Olympus", wantFrag: `time zone "Mars/Olympus"`},
		{name: "local zone", schedule: "Mon 08:00-09:00 Local", wantFrag: `"Local" depends on the machine`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.schedule)
			if err == nil {
				t.Fatalf("ParseSchedule(%q) = %v, want error", tt.schedule, s)
			}
			if !strings.Contains(err.Error(), tt.wantFrag) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantFrag)
			}
		})
	}
}

func TestScheduleString(t *testing.T) {
	tests := []struct {
		name     string
		schedule string
		want     string
	}{
		{name: "as written", schedule: "Mon-Fri 08:00-18:00 Europe/Berlin", want: "Mon-Fri 08:00-18:00 Europe/Berlin"},
		{name: "whitespace collapsed", schedule: "  Sat,Sun\t10:00-12:00   UTC ", want: "Sat,Sun 10:00-12:00 UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.schedule)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
	var nilSchedule *Schedule
	if nilSchedule.Contains(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)) || nilSchedule.String() != "" {
		t.Error("nil schedule contains a time or has text")
	}
}
