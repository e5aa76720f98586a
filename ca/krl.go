package ca

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"
)

// OpenSSH key revocation list (KRL) constants, from PROTOCOL.krl.
const (
	krlMagic                = 0x5353484b524c0a00 // "SSHKRL\n\0"
	krlFormatVersion        = 1
	krlSectionCertificates  = 1
	krlSectionCertSerialLst = 0x20
)

// KRL builds an OpenSSH key revocation list that revokes the given serials
// of certificates signed by ca, for sshd's RevokedKeys and ssh-keygen -Q.
// version should grow with every list published (a counter or a time);
// serials need not be sorted and duplicates are dropped. Serial 0 cannot be
// revoked by serial (jitssh never issues it) and is refused.
func KRL(ca ssh.PublicKey, serials []uint64, version uint64, generated time.Time, comment string) ([]byte, error) {
	return KRLOf([]KRLSection{{CA: ca, Serials: serials}}, version, generated, comment)
}

// KRLSection is the serials revoked of the certificates one CA key signed.
type KRLSection struct {
	CA      ssh.PublicKey
	Serials []uint64
}

// KRLOf builds one OpenSSH KRL with a certificate section per CA key, as
// ssh-keygen -k -s writes for several CAs: sshd's RevokedKeys and
// ssh-keygen -Q check a certificate against the section of the key that
// signed it. A section without serials is left out; the rules of KRL hold
// for each section.
func KRLOf(sections []KRLSection, version uint64, generated time.Time, comment string) ([]byte, error) {
	var out []byte
	out = binary.BigEndian.AppendUint64(out, krlMagic)
	out = binary.BigEndian.AppendUint32(out, krlFormatVersion)
	out = binary.BigEndian.AppendUint64(out, version)
	out = binary.BigEndian.AppendUint64(out, uint64(generated.Unix()))
	out = binary.BigEndian.AppendUint64(out, 0) // flags
	out = appendString(out, nil)                // reserved
	out = appendString(out, []byte(comment))
	for _, sec := range sections {
		if sec.CA == nil {
			return nil, errors.New("krl: ca key missing")
		}
		sorted := slices.Clone(sec.Serials)
		slices.Sort(sorted)
		sorted = slices.Compact(sorted)
		if len(sorted) > 0 && sorted[0] == 0 {
			return nil, errors.New("krl: serial 0 cannot be revoked by serial")
		}
		if len(sorted) == 0 {
			continue
		}
		var list []byte
		for _, s := range sorted {
			list = binary.BigEndian.AppendUint64(list, s)
		}
		var certs []byte
		certs = appendString(certs, sec.CA.Marshal())
		certs = appendString(certs, nil) // reserved
		certs = append(certs, krlSectionCertSerialLst)
		certs = appendString(certs, list)
		out = append(out, krlSectionCertificates)
		out = appendString(out, certs)
	}
	return out, nil
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
