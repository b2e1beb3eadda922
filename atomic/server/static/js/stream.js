// One job's events over WS /ws/stream, reconnecting when the connection drops.
//
// A new job starts with the generate body as the first message; an existing one is
// followed with {"job_id"}. After a drop the stream reconnects (0.5 s, doubling to 5 s)
// and follows again with {"job_id", "after_seq"}: the last seq seen, so a server that
// keeps the events resumes right after it (one that does not starts from the job's
// current state, which the contract sends first).

import {wsURL} from './api.js';

export class JobStream {
  constructor({onEvent, onConnection}) {
    this.onEvent = onEvent;
    this.onConnection = onConnection || (() => {});
    this.jobId = null;
    this.seq = 0;
    this.done = false;
    this.failed = false;
    this.closed = false;
    this.retries = 0;
    this.ws = null;
    this.timer = null;
    this.accepted = null; // {resolve, reject} while a start waits for its "accepted"
  }

  // Start a job; resolves with its id once the server has accepted it.
  start(body) {
    return new Promise((resolve, reject) => {
      this.accepted = {resolve, reject};
      this.open(body);
    });
  }

  follow(jobId) {
    this.jobId = jobId;
    this.open({job_id: jobId});
  }

  get live() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  // Ask the server to cancel the job on this connection; false when not connected.
  cancel() {
    if (!this.live) return false;
    this.ws.send(JSON.stringify({type: 'cancel'}));
    return true;
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  open(first) {
    let ws;
    try {
      ws = new WebSocket(wsURL());
    } catch (err) {
      this.settle(new Error(`cannot open the WebSocket: ${err.message}`));
      return;
    }
    this.ws = ws;
    this.onConnection('connecting');
    ws.onopen = () => {
      this.onConnection('live');
      ws.send(JSON.stringify(first));
    };
    ws.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      this.retries = 0;
      if (typeof event.seq === 'number') this.seq = event.seq;
      if (event.job_id) this.jobId = event.job_id;
      if (event.type === 'done') this.done = true;
      if (event.type === 'accepted') this.settle(null, event.job_id);
      if (event.type === 'error') {
        this.failed = true;
        const err = new Error(event.error?.message || 'the server refused the message');
        err.code = event.error?.code;
        if (this.settle(err)) return;
      }
      this.onEvent(event);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.done || this.failed || this.closed) {
        this.onConnection('closed');
        return;
      }
      if (!this.jobId) {
        this.onConnection('closed');
        this.settle(new Error('the connection closed before the server accepted the job'));
        return;
      }
      const delay = Math.min(5000, 500 * 2 ** this.retries);
      this.retries += 1;
      this.onConnection('reconnecting', this.retries);
      this.timer = setTimeout(() => {
        if (!this.closed) this.open({job_id: this.jobId, after_seq: this.seq});
      }, delay);
    };
  }

  // End a pending start(); true when there was one.
  settle(err, jobId) {
    const pending = this.accepted;
    if (!pending) return false;
    this.accepted = null;
    if (err) pending.reject(err);
    else pending.resolve(jobId);
    return true;
  }
}
