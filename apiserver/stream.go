package apiserver

import (
	"net/http"
	"time"
)

// streamWriteTimeout bounds each write of a streamed answer (a recording
// download, a `jit sessions watch` follow). The server's WriteTimeout
// bounds a whole answer, which a stream outlives by design; each write
// pushes the deadline on instead, so a stream lives as long as its reader
// reads, and a reader that stops reading is cut.
const streamWriteTimeout = time.Minute

// streamWriter writes a long answer, extending the connection's write
// deadline before each write.
type streamWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// newStream prepares w for a long answer: the read deadline, which would
// otherwise end the request's context mid-stream, is lifted (the body has
// been read), and each write gets streamWriteTimeout.
func newStream(w http.ResponseWriter) *streamWriter {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	return &streamWriter{w: w, rc: rc}
}

func (s *streamWriter) Write(p []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return s.w.Write(p)
}

// Flush sends what is buffered, within streamWriteTimeout.
func (s *streamWriter) Flush() {
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	_ = s.rc.Flush()
}
