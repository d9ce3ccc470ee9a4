/* echo: returns the request payload unchanged (the protocol's floor). */
#include "sdk/ember_handler.h"

static int echo(const struct ember_request *req, struct ember_response *resp,
		void *ctx)
{
	(void)ctx;
	return ember_response_append(resp, req->data, req->len) ? 1 : 0;
}

int main(void)
{
	return ember_handler_run(echo, NULL);
}
