package jitclient

import (
	"context"
	"time"

	"github.com/jitssh/jitssh/api"
)

// Events calls each with every audit event matching q, in order, fetching
// page after page of q.Limit events (a full page may have more behind it).
// With follow it then polls for new events until ctx ends. The end of ctx
// ends it without error: following is stopped by interrupting it. An error
// from each stops it and is returned.
func (c *Client) Events(ctx context.Context, q api.EventQuery, follow bool, each func(api.Event) error) error {
	for {
		evs, err := c.API.Events(ctx, q)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, ev := range evs {
			q.After = ev.Seq
			if err := each(ev); err != nil {
				return err
			}
		}
		if q.Limit > 0 && len(evs) == q.Limit {
			continue
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.poll()):
		}
	}
}
