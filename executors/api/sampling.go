package api

// encodeRequest is the whole body of req: with the client's sampling, or
// with the request's own when it has one.
func (c *Client) encodeRequest(req Request) ([]byte, error) {
	if req.Sampling == nil {
		return c.encodeBody(req.Messages)
	}
	prefix, with, err := encodePrefix(c.cfg.Model, *req.Sampling)
	if err != nil {
		return nil, err
	}
	own := &Client{prefix: prefix, withMessages: with}
	return own.encodeBody(req.Messages)
}
