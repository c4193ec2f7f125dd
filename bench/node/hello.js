// node's plain `http` hello-world: the ceiling of node's HTTP stack on one core.
// Usage: node hello.js PORT
import http from 'node:http';

const port = Number(process.argv[2] || 8090);
const body = 'Hello, world!';
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 65000;
server.listen(port, '127.0.0.1');
