package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/internal/s3test"
	"github.com/jitssh/jitssh/recstore"
	"github.com/jitssh/jitssh/sessionlog"
)

// TestForgottenEnd: a forgotten replica's live session whose recording is
// a completed object ends jitd_stopped with the object's digest and byte
// counts; one with no object, or only the parts of a multipart upload
// never completed, ends recording_lost. Real versitygw.
func TestForgottenEnd(t *testing.T) {
	srv := s3test.Start(t)
	srv.Env(t)
	ctx := context.Background()
	rec := filepath.Join(t.TempDir(), "r.cast.zst")
	w, err := sessionlog.Create(rec, sessionlog.Header{Width: 80, Height: 24}, sessionlog.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Output([]byte("stored output")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "rec"
	if _, err := srv.Client().PutObject(ctx, s3test.Bucket, prefix+"/2026/01/02/stored.cast.zst", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: srv.Client()}
	upload, err := core.NewMultipartUpload(ctx, s3test.Bucket, prefix+"/2026/01/02/parts.cast.zst", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.PutObjectPart(ctx, s3test.Bucket, prefix+"/2026/01/02/parts.cast.zst", upload, 1, bytes.NewReader(body), int64(len(body)), minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	recs, err := recstore.Open(recstore.Config{
		Location: recstore.Location{Bucket: s3test.Bucket, Prefix: prefix}, S3: recstore.S3Config{Endpoint: srv.Endpoint, Region: "us-east-1"},
		Spool: t.TempDir(), Lookup: func(context.Context, string) (recstore.SessionEnd, bool, error) {
			return recstore.SessionEnd{}, false, nil
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		id, reason, sha string
		size, out       int64
	}{
		{"stored", audit.EndJitdStopped, hex.EncodeToString(sum[:]), int64(len(body)), 13},
		{"parts", audit.EndRecordingLost, "", 0, 0},
		{"none", audit.EndRecordingLost, "", 0, 0},
	}
	for _, tt := range tests {
		x := audit.Session{ID: tt.id, StartedAt: started, RecordingPath: "2026/01/02/" + tt.id + ".cast.zst"}
		end, err := forgottenEnd(ctx, recs, x, started.Add(time.Hour))
		if err != nil {
			t.Fatalf("%s: %v", tt.id, err)
		}
		if end.EndReason != tt.reason || end.RecordingSHA256 != tt.sha || end.RecordingSize != tt.size || end.BytesOut != tt.out || end.ExitStatus != -1 ||
			(tt.sha == "") != (end.RecordingPath == "") {
			t.Errorf("%s: forgottenEnd = %+v; want %s, SHA-256 %q over %d bytes, %d bytes out", tt.id, end, tt.reason, tt.sha, tt.size, tt.out)
		}
	}
}
