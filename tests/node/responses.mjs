// The official openai Node SDK against the service: a create and a stream pair, and the stream
// helper. Prints what it saw as one JSON object for tests/sdk/test_node_sdk.py to check.
// Usage: node responses.mjs BASE_URL
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-local", maxRetries: 0, timeout: 20000 });

const created = await client.responses.create({ model: "builtin", input: "from node" });

const events = [];
const stream = await client.responses.create({ model: "builtin", input: "node stream", stream: true });
for await (const event of stream) {
  events.push({ type: event.type, sequence_number: event.sequence_number, delta: event.delta ?? null });
}

const helper = client.responses.stream({ model: "builtin", input: "node helper" });
const deltas = [];
helper.on("response.output_text.delta", (event) => deltas.push(event.delta));
const final = await helper.finalResponse();

const conversation = await client.conversations.create({ items: [{ role: "user", content: "node conversation" }] });
const items = [];
for await (const item of client.conversations.items.list(conversation.id, { order: "asc", limit: 1 })) {
  items.push(item.content[0].text);
}

let notFound = null;
try {
  await client.responses.retrieve("resp_nope");
} catch (error) {
  notFound = { status: error.status, name: error.constructor.name };
}

console.log(
  JSON.stringify({
    created: { id: created.id, status: created.status, output_text: created.output_text },
    events,
    helper: { deltas, output_text: final.output_text ?? final.output[0].content[0].text, status: final.status },
    items,
    notFound,
  }),
);
