package codec

import (
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/config"
)

// NewDataConverter wraps Temporal's default data converter with an
// encrypting [Codec] over keys.
func NewDataConverter(keys []config.Key) (converter.DataConverter, error) {
	c, err := NewCodec(keys)
	if err != nil {
		return nil, err
	}
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c), nil
}

// NewFailureConverter returns a failure converter that moves error messages
// and stack traces into an encoded attributes payload, so they are encrypted
// by dc like any other payload; the history shows "Encoded failure" instead.
func NewFailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})
}

// ConfigureClient sets opts.DataConverter and opts.FailureConverter to
// Lethe's encrypting converters over keys, replacing whatever was there.
// Every Lethe client must be dialled with options passed through here;
// workers take their converters from the client they are created with.
func ConfigureClient(opts *client.Options, keys []config.Key) error {
	dc, err := NewDataConverter(keys)
	if err != nil {
		return err
	}
	opts.DataConverter = dc
	opts.FailureConverter = NewFailureConverter(dc)
	return nil
}

// PayloadKeyPrefix begins the id of a payload key made by [GenerateKey].
const PayloadKeyPrefix = "p"

// GenerateKey returns a new random AES-256 payload key for development or
// rotation. Its id is "p" followed by the UTC date and a random suffix, e.g.
// "p20260102-9f3a1c"; [FormatKey] renders it for LETHE_PAYLOAD_KEYS.
func GenerateKey() (config.Key, error) {
	k, err := config.GenerateKey(PayloadKeyPrefix)
	if err != nil {
		return config.Key{}, fmt.Errorf("codec: %w", err)
	}
	return k, nil
}

// FormatKey renders k as "id:base64key", the form [config.ParseKeys] reads.
// The result contains key material: treat it as a secret.
func FormatKey(k config.Key) string {
	return config.FormatKeys([]config.Key{k})
}
