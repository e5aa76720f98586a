package recstore

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config is how the object store is reached.
type S3Config struct {
	// Endpoint is the store's URL, http:// or https://HOST[:PORT]; empty
	// means AWS S3 (https://s3.amazonaws.com). A custom endpoint is
	// addressed path-style (https://HOST/BUCKET/KEY), which every
	// S3-compatible server accepts; AWS is addressed as AWS prefers.
	Endpoint string
	// Region is the bucket's region; empty lets the client ask the store.
	Region string
	// CAFile is a PEM file of the CA certificates that sign a private
	// endpoint's TLS certificate, instead of the system's.
	CAFile string
}

// newClient connects nothing yet: it builds the client with credentials
// from the usual AWS places, in this order: the AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) variables, the shared
// credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials,
// profile AWS_PROFILE), then the EC2 instance role.
func newClient(c S3Config) (*minio.Core, error) {
	endpoint := c.Endpoint
	lookup := minio.BucketLookupPath
	if endpoint == "" {
		endpoint, lookup = "https://s3.amazonaws.com", minio.BucketLookupAuto
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %q: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("s3 endpoint %q: want http:// or https://HOST[:PORT] and nothing more", endpoint)
	}
	tr, err := transport(c.CAFile)
	if err != nil {
		return nil, err
	}
	if c.CAFile != "" && u.Scheme != "https" {
		return nil, fmt.Errorf("s3 endpoint %q: a CA file is given but the endpoint is not https", endpoint)
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{Client: &http.Client{Transport: http.DefaultTransport, Timeout: 5 * time.Second}},
	})
	core, err := minio.NewCore(u.Host, &minio.Options{
		Creds: creds, Secure: u.Scheme == "https", Transport: tr, Region: c.Region, BucketLookup: lookup,
		// The upload loop retries with its own backoff and keeps the
		// backlog current meanwhile; the client's ten retries would hide
		// an outage inside one step.
		MaxRetries: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", endpoint, err)
	}
	return core, nil
}

// transport is the HTTP transport to the store: the default one, or one
// that trusts only the certificates in caFile.
func transport(caFile string) (http.RoundTripper, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute
	if caFile == "" {
		return tr, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("s3 CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3 CA file %s holds no PEM certificate", caFile)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}
