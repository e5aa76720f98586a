package jitclient

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
)

// ErrNoAgent means --add-to-agent yes was asked for without an ssh-agent
// (SSH_AUTH_SOCK empty). The grant is stored all the same.
var ErrNoAgent = errors.New("--add-to-agent yes but SSH_AUTH_SOCK is empty")

// ObtainOptions describe the access asked for.
type ObtainOptions struct {
	Host, Login, Reason string
	TTL                 time.Duration // zero: the role's default
	BreakGlass          bool
	// PublicKeyFile, when set, is the absolute path of an existing key's
	// KEY.pub (its private key or FIDO handle KEY beside it) to certify
	// instead of a fresh key.
	PublicKeyFile string
	// NoWait returns a request that needs approval at once, pending.
	NoWait bool
	Wait   WaitOptions
	Agent  AgentOptions
}

// AgentOptions say whether to load a fresh key and its certificate into
// the ssh-agent at Sock (SSH_AUTH_SOCK).
type AgentOptions struct {
	Mode creds.AgentMode
	Sock string
}

// Obtained is the outcome of Obtain or Resume.
type Obtained struct {
	Request api.Request
	// Pending is set when NoWait returned before approval; Grant is then
	// empty and the key waits in creds for Resume.
	Pending bool
	Grant   creds.Grant
	// InAgent says the key and certificate were loaded into ssh-agent.
	InAgent bool
	// AgentWarning is why loading the agent failed in mode auto, which
	// does not fail the grant.
	AgentWarning error
}

// Obtain asks for a grant, waits for approval where the policy needs one
// (see Wait for the errors that end a wait), stores the certificate with
// its key and loads the agent.
func (c *Client) Obtain(ctx context.Context, o ObtainOptions) (Obtained, error) {
	priv, pubText, err := requestKey(o.PublicKeyFile)
	if err != nil {
		return Obtained{}, err
	}
	body := api.CreateRequestBody{Host: o.Host, Login: o.Login, Reason: o.Reason, PublicKey: strings.TrimSpace(pubText), BreakGlass: o.BreakGlass}
	if o.TTL != 0 {
		body.TTL = o.TTL.String()
	}
	res, err := c.create(ctx, body)
	if err != nil {
		return Obtained{}, err
	}
	if res.Certificate != "" {
		return c.store(res, priv, o.PublicKeyFile, o.Agent)
	}
	// Kept on disk before waiting, so that jit wait can finish an
	// interrupted or --no-wait request.
	if err := c.Dir.SavePending(res.Request.ID, priv, o.PublicKeyFile); err != nil {
		return Obtained{}, err
	}
	if o.NoWait {
		return Obtained{Request: res.Request, Pending: true}, nil
	}
	if res, err = c.Wait(ctx, res.Request, o.Wait); err != nil {
		return Obtained{}, err
	}
	return c.storePending(res, o.Agent)
}

// Resume finishes the request id made earlier on this machine: it waits
// for approval unless it is approved already, redeems it, and stores the
// certificate with the pending key.
func (c *Client) Resume(ctx context.Context, id string, w WaitOptions, agent AgentOptions) (Obtained, error) {
	res, err := c.API.Request(ctx, id)
	if err != nil {
		return Obtained{}, err
	}
	if res.Request.State != api.StateApproved {
		res, err = c.Wait(ctx, res.Request, w)
	} else {
		res, err = c.redeem(ctx, res.Request.ID)
	}
	if err != nil {
		return Obtained{}, err
	}
	return c.storePending(res, agent)
}

// requestKey returns a fresh key pair's private half and public line, or
// with pubFile set no private key and the file's public line.
func requestKey(pubFile string) (ed25519.PrivateKey, string, error) {
	if pubFile != "" {
		b, err := os.ReadFile(pubFile)
		if err != nil {
			return nil, "", fmt.Errorf("read --key: %w", err)
		}
		return nil, string(b), nil
	}
	priv, signer, err := creds.NewKey()
	if err != nil {
		return nil, "", err
	}
	return priv, string(ssh.MarshalAuthorizedKey(signer.PublicKey())), nil
}

func (c *Client) storePending(res api.RequestResponse, agent AgentOptions) (Obtained, error) {
	priv, pubFile, err := c.Dir.LoadPending(res.Request.ID)
	if err != nil {
		return Obtained{}, err
	}
	return c.store(res, priv, pubFile, agent)
}

// store saves the certificate of res with its key (a fresh priv, or the
// existing key whose public half is pubFile) and loads the agent.
func (c *Client) store(res api.RequestResponse, priv ed25519.PrivateKey, pubFile string, agent AgentOptions) (Obtained, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(res.Certificate))
	if err != nil {
		return Obtained{}, fmt.Errorf("parse issued certificate: %w", err)
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok {
		return Obtained{}, errors.New("daemon answered with a key that is not a certificate")
	}
	out := Obtained{Request: res.Request}
	r := res.Request
	if priv == nil && pubFile != "" {
		out.Grant, err = c.Dir.SaveExternalGrant(r.Login, r.Host, strings.TrimSuffix(pubFile, ".pub"), cert)
	} else {
		out.Grant, err = c.Dir.SaveGrant(r.Login, r.Host, priv, cert)
	}
	if err != nil {
		return Obtained{}, err
	}
	// A pending key left behind is no danger to the grant just stored;
	// failing the grant over it would only make the user ask again.
	_ = c.Dir.RemovePending(r.ID)
	out.InAgent, err = loadAgent(agent, priv, cert)
	if err != nil && agent.Mode != creds.AgentYes {
		out.AgentWarning, err = err, nil
	}
	return out, err
}

// loadAgent adds a fresh key and its certificate to the agent as the mode
// asks. A key jit did not make is never loaded: jit holds no private half.
func loadAgent(o AgentOptions, priv ed25519.PrivateKey, cert *ssh.Certificate) (bool, error) {
	switch {
	case o.Mode == creds.AgentNo || priv == nil:
		return false, nil
	case o.Sock == "" && o.Mode == creds.AgentYes:
		return false, ErrNoAgent
	case o.Sock == "":
		return false, nil
	}
	if err := creds.AddToAgent(o.Sock, priv, cert, time.Now()); err != nil {
		return false, err
	}
	return true, nil
}
