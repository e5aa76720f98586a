package jitclient

import (
	"context"
	"fmt"

	"github.com/jitssh/jitssh/atomicfile"
)

// WriteKRL fetches the key revocation list and replaces the file path with
// it atomically, mode 0644 for sshd to read: sshd refuses every
// certificate while its RevokedKeys file is unreadable or torn. It returns
// the number of bytes written.
func (c *Client) WriteKRL(ctx context.Context, path string) (int, error) {
	krl, err := c.API.KRL(ctx)
	if err != nil {
		return 0, err
	}
	if err := atomicfile.Write(path, krl, 0o644); err != nil {
		return 0, fmt.Errorf("write KRL: %w", err)
	}
	return len(krl), nil
}
