package recstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/minio/minio-go/v7"
)

// FS is the recordings as one file system of names relative to the spool
// (what Name returns): a recording is read from the spool while it is
// there (a live session's, or one not yet confirmed uploaded), else from
// the object store. A spool file is removed only once its object is
// checked, so a name is always in one or the other; a reader that opened
// the spool file keeps reading it after the removal.
func (s *Store) FS() fs.FS { return storeFS{s: s, spool: os.DirFS(s.cfg.Spool)} }

type storeFS struct {
	s     *Store
	spool fs.FS
}

func (f storeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	file, err := f.spool.Open(name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !f.s.Remote() {
		return file, err
	}
	return f.s.openObject(name)
}

// openObject opens the stored object of name; a missing object is
// fs.ErrNotExist.
func (s *Store) openObject(name string) (fs.File, error) {
	key := s.cfg.Location.key(name)
	ctx, cancel := context.WithCancel(context.Background())
	obj, err := s.client.Client.GetObject(ctx, s.cfg.Location.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		cancel()
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	info, err := obj.Stat()
	if err != nil {
		_ = obj.Close()
		cancel()
		code := minio.ToErrorResponse(err).Code
		if code == minio.NoSuchKey || code == "NotFound" {
			err = fs.ErrNotExist
		} else {
			err = fmt.Errorf("object %s in bucket %s: %w", key, s.cfg.Location.Bucket, err)
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &objectFile{Object: obj, cancel: cancel, info: objectInfo{name: path.Base(name), size: info.Size, mod: info.LastModified}}, nil
}

// objectFile is a stored recording opened for reading.
type objectFile struct {
	*minio.Object
	cancel context.CancelFunc
	info   objectInfo
}

func (o *objectFile) Stat() (fs.FileInfo, error) { return o.info, nil }

func (o *objectFile) Close() error {
	err := o.Object.Close()
	o.cancel()
	return err
}

type objectInfo struct {
	name string
	size int64
	mod  time.Time
}

func (i objectInfo) Name() string       { return i.name }
func (i objectInfo) Size() int64        { return i.size }
func (i objectInfo) Mode() fs.FileMode  { return 0o400 }
func (i objectInfo) ModTime() time.Time { return i.mod }
func (i objectInfo) IsDir() bool        { return false }
func (i objectInfo) Sys() any           { return nil }
