// SPDX-License-Identifier: Apache-2.0

package stats

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// maxResponseLine bounds one response; a "top" answer is about 1 KiB.
const maxResponseLine = 1 << 20

// Client talks to a stats server over one connection.
type Client struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// Dial connects to the server at @path; @timeout bounds the connect and
// every request. Errors wrap the syscall error (ENOENT, ECONNREFUSED,
// EACCES...) so callers can tell "not running" from "not allowed".
func Dial(path string, timeout time.Duration) (*Client, error) {
	conn, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", path, err)
	}
	return &Client{conn: conn, r: bufio.NewReader(conn), timeout: timeout}, nil
}

// Close hangs up.
func (c *Client) Close() error { return c.conn.Close() }

// Do sends one request and returns the "resp" of the answer; a non-zero
// errno comes back as a *RemoteError.
func (c *Client) Do(req Request) (json.RawMessage, error) {
	if req.Args == nil {
		req.Args = map[string]string{} // upstream servers want the field
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("sending %s request: %w", req.Req, err)
	}
	line, err := readLine(c.r, maxResponseLine)
	if err != nil {
		return nil, fmt.Errorf("reading %s response: %w", req.Req, err)
	}
	resp, err := ParseResponse(line)
	if err != nil {
		return nil, err
	}
	if resp.Errno != 0 {
		var msg string
		if json.Unmarshal(resp.Args["resp"], &msg) != nil {
			msg = string(resp.Args["resp"])
		}
		return nil, &RemoteError{Errno: resp.Errno, Msg: msg}
	}
	out, ok := resp.Args["resp"]
	if !ok {
		return nil, errors.New(`stats response has no "resp"`)
	}
	return out, nil
}

// Top fetches the latest snapshot, also as the server's JSON.
func (c *Client) Top() (Snapshot, json.RawMessage, error) {
	raw, err := c.Do(Request{Req: "stats", Args: map[string]string{"target": "top"}})
	if err != nil {
		return Snapshot{}, nil, err
	}
	s, err := DecodeTop(raw)
	return s, raw, err
}

// Meta fetches the field descriptions.
func (c *Client) Meta() (map[string]Meta, error) {
	raw, err := c.Do(Request{Req: "stats_meta"})
	if err != nil {
		return nil, err
	}
	var m map[string]Meta
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("stats_meta response: %w", err)
	}
	return m, nil
}
