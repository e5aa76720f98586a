package recstore

import (
	"context"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
)

// OpenStored opens recording name in the object store, never the spool:
// found is false when no such object exists. Only a completed object
// counts: the parts of a multipart upload never completed (a recording
// whose jitd stopped mid-session) are not an object and are not looked at.
// Without a remote Location nothing is stored here and found is false.
func (s *Store) OpenStored(ctx context.Context, name string) (rc io.ReadCloser, found bool, err error) {
	if s.client == nil {
		return nil, false, nil
	}
	key := s.cfg.Location.key(name)
	rc, _, _, err = s.client.GetObject(ctx, s.cfg.Location.Bucket, key, minio.GetObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", key, err)
	}
	return rc, true, nil
}
