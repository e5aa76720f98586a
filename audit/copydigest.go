package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"
)

// rowDigest is an order-free digest of a table's rows, for Copy's check
// that the copy holds the values sent (a row count alone passes a copy
// whose revoked_at a trigger or a rule changed on the way in): the sum,
// modulo 2^256, of each row's SHA-256 over its values as PostgreSQL stores
// them (text escaped, pgtext.go), so that either side may read its rows in
// any order, and equal rows count as often as they occur.
type rowDigest struct {
	sum [sha256.Size]byte
}

// add adds the row of vals: values as database/sql reads them from SQLite
// or pgx from PostgreSQL (integers of any width, floats, text, bytes, NULL).
func (d *rowDigest) add(vals []any) error {
	h := sha256.New()
	for i, v := range vals {
		if err := writeValue(h, v); err != nil {
			return fmt.Errorf("column %d: %w", i+1, err)
		}
	}
	var carry uint16
	row := h.Sum(nil)
	for i := len(d.sum) - 1; i >= 0; i-- {
		carry += uint16(d.sum[i]) + uint16(row[i])
		d.sum[i] = byte(carry)
		carry >>= 8
	}
	return nil
}

func (d *rowDigest) String() string { return hex.EncodeToString(d.sum[:]) }

// writeValue writes v to h with its kind and length, so that no two rows
// of different values write the same bytes. Text and bytes are one kind:
// the copy stores a string read from a BLOB column as its bytes.
func writeValue(h hash.Hash, v any) error {
	var num [9]byte
	writeNum := func(kind byte, u uint64) {
		num[0] = kind
		binary.BigEndian.PutUint64(num[1:], u)
		h.Write(num[:])
	}
	writeBytes := func(b []byte) {
		writeNum('v', uint64(len(b)))
		h.Write(b)
	}
	switch x := v.(type) {
	case nil:
		h.Write([]byte{'n'})
	case string:
		writeBytes([]byte(x))
	case []byte:
		writeBytes(x)
	case int64:
		writeNum('i', uint64(x))
	case int32:
		writeNum('i', uint64(int64(x)))
	case int16:
		writeNum('i', uint64(int64(x)))
	case bool:
		var u uint64
		if x {
			u = 1
		}
		writeNum('i', u)
	case float64:
		writeNum('f', math.Float64bits(x))
	case float32:
		writeNum('f', math.Float64bits(float64(x)))
	default:
		return fmt.Errorf("a value of type %T, which the copy's check does not compare", v)
	}
	return nil
}

// pgTableDigest is the digest of table t's copied columns as tx holds them.
func pgTableDigest(ctx context.Context, tx pgx.Tx, t copyTable) (string, error) {
	cols := make([]string, len(t.columns))
	for i, c := range t.columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	rows, err := tx.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+pgx.Identifier{t.name}.Sanitize())
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var d rowDigest
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return "", err
		}
		if err := d.add(vals); err != nil {
			return "", err
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return d.String(), nil
}
