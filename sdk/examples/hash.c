/* hash: CPU-bound example: the response is the SHA-256 of the request as 64
 * lowercase hex digits and a newline (what `sha256sum` prints first). */
#include "sdk/ember_handler.h"
#include "sdk/sha256.h"

static int hash(const struct ember_request *req, struct ember_response *resp,
		void *ctx)
{
	char hex[SHA256_HEX_SIZE];

	(void)ctx;
	sha256_hex(req->data, req->len, hex);
	if (ember_response_append(resp, hex, 64) ||
	    ember_response_append(resp, "\n", 1))
		return 1;
	return 0;
}

int main(void)
{
	return ember_handler_run(hash, NULL);
}
