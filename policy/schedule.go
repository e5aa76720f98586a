package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dayNames are the day names a schedule accepts, indexed by time.Weekday.
const dayNames = "SunMonTueWedThuFriSat"

// Schedule is a weekly window of wall-clock time in one time zone, such as
// "Mon-Fri 08:00-18:00 Europe/Berlin". A Schedule is immutable once parsed
// and safe for concurrent use.
type Schedule struct {
	text       string
	days       [7]bool // indexed by time.Weekday
	start, end int     // minutes after local midnight; start inclusive, end exclusive
	loc        *time.Location
}

// ParseSchedule parses "DAYS START-END ZONE". DAYS is a comma-separated list
// of day names (Mon Tue Wed Thu Fri Sat Sun) and ranges such as Mon-Fri (a
// range may wrap, as in Fri-Mon). START-END is HH:MM-HH:MM in 24-hour time,
// START before END, END at most 24:00; a window never crosses midnight. ZONE
// is an IANA zone name loaded with time.LoadLocation ("UTC" is allowed,
// "Local" is not because it would depend on the machine). Times are compared
// as wall-clock time in ZONE, so the window follows daylight saving changes.
func ParseSchedule(s string) (*Schedule, error) {
	fields := strings.Fields(s)
	if len(fields) != 3 {
		return nil, fmt.Errorf("schedule %q: want \"DAYS HH:MM-HH:MM ZONE\", e.g. \"Mon-Fri 08:00-18:00 Europe/Berlin\"", s)
	}
	sch := &Schedule{text: strings.Join(fields, " ")}
	if err := sch.parseDays(fields[0]); err != nil {
		return nil, fmt.Errorf("schedule %q: %w", s, err)
	}
	if err := sch.parseTimes(fields[1]); err != nil {
		return nil, fmt.Errorf("schedule %q: %w", s, err)
	}
	zone := fields[2]
	if zone == "Local" {
		return nil, fmt.Errorf("schedule %q: time zone \"Local\" depends on the machine; name an IANA zone such as \"UTC\"", s)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: time zone %q: %w", s, zone, err)
	}
	sch.loc = loc
	return sch, nil
}

func (s *Schedule) parseDays(field string) error {
	for _, item := range strings.Split(field, ",") {
		first, last, isRange := strings.Cut(item, "-")
		from, err := parseDay(first)
		if err != nil {
			return err
		}
		to := from
		if isRange {
			if to, err = parseDay(last); err != nil {
				return err
			}
		}
		for d := from; ; d = (d + 1) % 7 {
			if s.days[d] {
				return fmt.Errorf("day %s listed twice", dayNames[3*d:3*d+3])
			}
			s.days[d] = true
			if d == to {
				break
			}
		}
	}
	return nil
}

func parseDay(name string) (int, error) {
	if len(name) == 3 {
		if i := strings.Index(dayNames, name); i >= 0 && i%3 == 0 {
			return i / 3, nil
		}
	}
	return 0, fmt.Errorf("day %q: want one of Mon Tue Wed Thu Fri Sat Sun", name)
}

func (s *Schedule) parseTimes(field string) error {
	from, to, ok := strings.Cut(field, "-")
	if !ok {
		return fmt.Errorf("time range %q: want HH:MM-HH:MM", field)
	}
	var err error
	if s.start, err = parseClock(from); err != nil {
		return err
	}
	if s.end, err = parseClock(to); err != nil {
		return err
	}
	if s.start >= 24*60 {
		return fmt.Errorf("start time %q: must be before 24:00", from)
	}
	if s.start >= s.end {
		return fmt.Errorf("time range %q: start must be before end (a window cannot cross midnight)", field)
	}
	return nil
}

// parseClock parses HH:MM (00:00 to 24:00) into minutes after midnight.
func parseClock(v string) (int, error) {
	if len(v) != 5 || v[2] != ':' {
		return 0, fmt.Errorf("time %q: want HH:MM", v)
	}
	h, errH := strconv.Atoi(v[:2])
	m, errM := strconv.Atoi(v[3:])
	if errH != nil || errM != nil || v[0] == '+' || v[0] == '-' || v[3] == '+' || v[3] == '-' ||
		h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q: want HH:MM between 00:00 and 24:00", v)
	}
	return h*60 + m, nil
}

// Contains reports whether t falls inside the window, judged by the wall
// clock in the schedule's zone: the day must be listed and the time of day
// at or after START and before END. A nil Schedule contains nothing.
func (s *Schedule) Contains(t time.Time) bool {
	if s == nil || s.loc == nil {
		return false
	}
	lt := t.In(s.loc)
	if !s.days[lt.Weekday()] {
		return false
	}
	m := lt.Hour()*60 + lt.Minute()
	return m >= s.start && m < s.end
}

// String returns the schedule as written, with runs of whitespace collapsed.
func (s *Schedule) String() string {
	if s == nil {
		return ""
	}
	return s.text
}
