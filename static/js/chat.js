/* Chat page: questions go to the JSON routes (/chat/start, /chat/message, ...) with fetch.
 * Everything the model or a user wrote is put into the page with textContent, never innerHTML: an answer can
 * never inject markup or script. Citations "[n]" become buttons that open the cited passage (sources[n-1]). */
(function () {
  "use strict";

  var app, log, form, input, sendButton, typing, errorBox, exportLink, endButton, emptyNote, historyList, historyEmpty;
  var SIDEBAR_CONVERSATIONS = 30;
  var attachInput, attachList, attachTimer;
  var conversationId = "";
  var showSources = true;
  var busy = false;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function request(method, url, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          if (!response.ok) {
            var error = new Error(data.detail || "The request failed (" + response.status + ").");
            error.status = response.status;
            throw error;
          }
          return data;
        });
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  // Appends "text [1] more [2]" to `parent` as text nodes and citation buttons; numbers without a source stay text.
  function appendCited(parent, text, sources, messageId) {
    var pattern = /\[(\d{1,2})\]/g;
    var last = 0;
    var match;
    while ((match = pattern.exec(text)) !== null) {
      parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      var number = parseInt(match[1], 10);
      if (showSources && sources && number >= 1 && number <= sources.length) {
        var cite = el("button", "chat-cite", "[" + number + "]");
        cite.type = "button";
        cite.setAttribute("aria-controls", "source-" + messageId + "-" + number);
        cite.setAttribute("aria-label", "Source " + number + ": " + sources[number - 1].title);
        cite.dataset.target = "source-" + messageId + "-" + number;
        cite.addEventListener("click", openSource);
        parent.appendChild(cite);
      } else {
        parent.appendChild(document.createTextNode(match[0]));
      }
      last = pattern.lastIndex;
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  // Paragraphs (blank-line separated) and numbered steps ("1. ..." lines) become <p> and <ol> elements.
  function renderAnswerText(container, text, sources, messageId) {
    text.split(/\n{2,}/).forEach(function (block) {
      var lines = [];
      var list = null;
      function flush() {
        if (lines.length) {
          var paragraph = el("p");
          appendCited(paragraph, lines.join("\n"), sources, messageId);
          container.appendChild(paragraph);
          lines = [];
        }
      }
      block.split("\n").forEach(function (line) {
        var step = /^(\d+)[.)]\s+(.*)$/.exec(line);
        if (step) {
          flush();
          if (!list) {
            list = el("ol", "chat-steps");
            container.appendChild(list);
          }
          var item = el("li");
          appendCited(item, step[2], sources, messageId);
          list.appendChild(item);
        } else {
          list = null;
          lines.push(line);
        }
      });
      flush();
    });
  }

  function openSource(event) {
    var target = document.getElementById(event.currentTarget.dataset.target);
    if (!target) {
      return;
    }
    target.open = true;
    target.classList.add("is-highlighted");
    target.scrollIntoView({ block: "nearest", behavior: "smooth" });
    var summary = target.querySelector("summary");
    if (summary) {
      summary.focus();
    }
    window.setTimeout(function () {
      target.classList.remove("is-highlighted");
    }, 1500);
  }

  function renderSources(container, sources, messageId) {
    if (!showSources || !sources || !sources.length) {
      return;
    }
    var list = el("ol", "chat-sources");
    list.setAttribute("aria-label", "Sources");
    sources.forEach(function (source, index) {
      var item = el("li");
      var details = el("details", "chat-source");
      details.id = "source-" + messageId + "-" + (index + 1);
      var summary = el("summary");
      summary.appendChild(el("span", "chat-source-number", "[" + (index + 1) + "] "));
      summary.appendChild(el("span", "chat-source-title", source.title));
      if (source.code) {
        summary.appendChild(document.createTextNode(" "));
        summary.appendChild(el("span", "badge", source.code));
      }
      details.appendChild(summary);
      details.appendChild(el("blockquote", "chat-source-excerpt", source.excerpt));
      if (typeof source.score === "number") {
        details.appendChild(el("small", "muted", "Similarity " + source.score.toFixed(2)));
      }
      item.appendChild(details);
      list.appendChild(item);
    });
    container.appendChild(list);
  }

  // Documents retrieved but not used by the answer: listed apart, unnumbered, most relevant first.
  function renderSeeAlso(container, seeAlso) {
    if (!showSources || !seeAlso || !seeAlso.length) {
      return;
    }
    var details = el("details", "chat-see-also");
    details.appendChild(el("summary", "muted", "See also (" + seeAlso.length + ")"));
    var list = el("ul");
    seeAlso.forEach(function (source) {
      var item = el("li");
      item.appendChild(el("span", "chat-source-title", source.title));
      if (source.code) {
        item.appendChild(document.createTextNode(" "));
        item.appendChild(el("span", "badge", source.code));
      }
      item.appendChild(el("blockquote", "chat-source-excerpt", source.excerpt));
      list.appendChild(item);
    });
    details.appendChild(list);
    container.appendChild(details);
  }

  function renderFeedback(container, messageId, existing) {
    var box = el("div", "chat-feedback");
    var label = el("span", "muted", "Was this helpful?");
    var up = el("button", "chat-thumb secondary outline", "Yes");
    var down = el("button", "chat-thumb secondary outline", "No");
    up.type = down.type = "button";
    up.setAttribute("aria-label", "Helpful (thumbs up)");
    down.setAttribute("aria-label", "Not helpful (thumbs down)");
    up.dataset.rating = "1";
    down.dataset.rating = "-1";
    var commentForm = el("form", "chat-comment");
    commentForm.hidden = true;
    var commentId = "comment-" + messageId;
    var commentLabel = el("label", "", "What was wrong or missing? (optional)");
    commentLabel.htmlFor = commentId;
    var comment = el("input");
    comment.type = "text";
    comment.id = commentId;
    comment.maxLength = 2000;
    var commentSend = el("button", "secondary", "Send comment");
    commentSend.type = "submit";
    commentForm.appendChild(commentLabel);
    commentForm.appendChild(comment);
    commentForm.appendChild(commentSend);
    var status = el("span", "chat-feedback-status muted");
    status.setAttribute("role", "status");

    function mark(rating) {
      up.setAttribute("aria-pressed", rating === 1 ? "true" : "false");
      down.setAttribute("aria-pressed", rating === -1 ? "true" : "false");
    }

    function send(rating, text) {
      var body = { message_id: messageId, rating: rating };
      if (text) {
        body.comment = text;
      }
      return request("POST", "/chat/feedback", body).then(
        function () {
          mark(rating);
          status.textContent = text ? "Thank you for the comment." : "Thank you for your feedback.";
        },
        function (error) {
          status.textContent = error.message;
        }
      );
    }

    up.addEventListener("click", function () {
      commentForm.hidden = true;
      send(1);
    });
    down.addEventListener("click", function () {
      send(-1).then(function () {
        commentForm.hidden = false;
        comment.focus();
      });
    });
    commentForm.addEventListener("submit", function (event) {
      event.preventDefault();
      send(-1, comment.value.trim()).then(function () {
        commentForm.hidden = true;
      });
    });
    if (existing) {
      mark(existing.rating);
    }
    box.appendChild(label);
    box.appendChild(up);
    box.appendChild(down);
    box.appendChild(status);
    container.appendChild(box);
    container.appendChild(commentForm);
  }

  function addMessage(role, text, extra) {
    extra = extra || {};
    emptyNote.hidden = true;
    var article = el("article", "chat-message chat-" + role);
    article.appendChild(el("h2", "visually-hidden", role === "user" ? "You asked" : "DeepMed answered"));
    if (role === "user") {
      article.appendChild(el("p", "", text));
    } else {
      var body = el("div", "chat-answer");
      if (extra.refused) {
        article.classList.add("chat-refused");
      }
      renderAnswerText(body, text, extra.sources, extra.id);
      article.appendChild(body);
      renderSources(article, extra.sources, extra.id);
      renderSeeAlso(article, extra.seeAlso);
      if (extra.id) {
        renderFeedback(article, extra.id, extra.feedback);
      }
    }
    log.appendChild(article);
    article.scrollIntoView({ block: "end", behavior: "smooth" });
    return article;
  }

  function setBusy(value) {
    busy = value;
    typing.hidden = !value;
    sendButton.disabled = value;
    sendButton.setAttribute("aria-busy", value ? "true" : "false");
  }

  function setConversation(id) {
    conversationId = String(id);
    app.dataset.conversationId = conversationId;
    exportLink.href = "/chat/export?conversation_id=" + encodeURIComponent(conversationId);
    exportLink.hidden = false;
    endButton.hidden = false;
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", "/chat?c=" + encodeURIComponent(conversationId));
    }
  }

  function shortDate(iso) {
    var date = new Date(iso);
    return (
      date.toLocaleDateString("en-GB", { day: "numeric", month: "short" }) +
      ", " +
      date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })
    );
  }

  // The sidebar lists the conversation as soon as its first answer is in (its title is the masked question).
  function refreshConversations() {
    if (!historyList || historyList.querySelector('a[href="/chat?c=' + conversationId + '"]')) {
      return;
    }
    request("GET", "/chat/history").then(
      function (data) {
        historyList.textContent = "";
        (data.conversations || []).slice(0, SIDEBAR_CONVERSATIONS).forEach(function (conversation) {
          var item = el("li");
          var link = el("a", "", conversation.title || "Untitled");
          link.href = "/chat?c=" + conversation.id;
          if (String(conversation.id) === conversationId) {
            link.setAttribute("aria-current", "page");
          }
          var note = el("small", "muted");
          var time = el("time", "", shortDate(conversation.started_at));
          time.dateTime = conversation.started_at;
          note.appendChild(time);
          if (conversation.ended_at) {
            note.appendChild(document.createTextNode(" · ended"));
          }
          item.appendChild(link);
          item.appendChild(document.createTextNode(" "));
          item.appendChild(note);
          historyList.appendChild(item);
        });
        historyList.hidden = false;
        historyEmpty.hidden = true;
      },
      function () {
        // The list is a convenience: the next page load shows it anyway.
      }
    );
  }

  // --- documents attached to the conversation (private to the user; answers cite them beside the shared base) ---

  function renderAttachments(documents) {
    attachList.textContent = "";
    var waiting = false;
    documents.forEach(function (doc) {
      var item = el("li", "chat-attachment");
      item.dataset.status = doc.status;
      item.appendChild(el("span", "chat-attachment-title", doc.title));
      item.appendChild(document.createTextNode(" "));
      if (doc.status === "ready") {
        item.appendChild(el("span", "badge badge-ok", "Ready"));
        item.appendChild(el("small", "muted", " " + doc.n_chunks + " passage" + (doc.n_chunks === 1 ? "" : "s")));
      } else if (doc.status === "failed") {
        item.appendChild(el("span", "badge badge-warn", "Failed"));
        item.appendChild(el("small", "", " " + doc.error));
      } else {
        waiting = true;
        item.appendChild(el("span", "badge", "Indexing…"));
      }
      var remove = el("button", "secondary outline small-button", "Remove");
      remove.type = "button";
      remove.setAttribute("aria-label", "Remove " + doc.title);
      remove.addEventListener("click", function () {
        request("DELETE", "/chat/documents/" + doc.id).then(loadAttachments, function (error) {
          showError(error.message);
        });
      });
      item.appendChild(document.createTextNode(" "));
      item.appendChild(remove);
      attachList.appendChild(item);
    });
    window.clearTimeout(attachTimer);
    if (waiting) {
      attachTimer = window.setTimeout(loadAttachments, 2000);
    }
  }

  function loadAttachments() {
    if (!conversationId || !attachList) {
      return;
    }
    request("GET", "/chat/documents?conversation_id=" + encodeURIComponent(conversationId)).then(
      function (data) {
        renderAttachments(data.documents || []);
      },
      function (error) {
        showError(error.message);
      }
    );
  }

  function attach() {
    var file = attachInput.files && attachInput.files[0];
    if (!file) {
      return;
    }
    showError("");
    attachInput.disabled = true;
    ensureConversation()
      .then(function (id) {
        var body = new FormData();
        body.append("conversation_id", id);
        body.append("file", file);
        return fetch("/chat/documents", {
          method: "POST",
          credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
          body: body,
        }).then(function (response) {
          return response
            .json()
            .catch(function () {
              return {};
            })
            .then(function (data) {
              if (!response.ok) {
                throw new Error(data.detail || "The document could not be attached (" + response.status + ").");
              }
              return data;
            });
        });
      })
      .then(loadAttachments, function (error) {
        showError(error.message);
      })
      .then(function () {
        attachInput.value = "";
        attachInput.disabled = false;
      });
  }

  function ensureConversation() {
    if (conversationId) {
      return Promise.resolve(conversationId);
    }
    return request("POST", "/chat/start", {}).then(function (data) {
      setConversation(data.conversation_id);
      return conversationId;
    });
  }

  // POST /chat/message/stream and read its server-sent events: the quoted answer shows at once, a language model's
  // answer replaces it as it is written, and the stored answer ("done") is what the promise resolves with.
  function streamAnswer(body) {
    var provisional = null;
    var written = "";
    function show(text, sources) {
      if (provisional) {
        provisional.remove();
      }
      provisional = addMessage("assistant", text, { sources: sources });
      provisional.classList.add("chat-provisional");
      provisional.setAttribute("aria-busy", "true");
    }
    function clear() {
      if (provisional) {
        provisional.remove();
        provisional = null;
      }
    }
    var quoted = null;
    return fetch("/chat/message/stream", {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "text/event-stream, application/json",
        "Content-Type": "application/json",
        "X-CSRFToken": csrfToken(),
      },
      body: JSON.stringify(body),
    }).then(function (response) {
      if (!response.ok) {
        return response
          .json()
          .catch(function () {
            return {};
          })
          .then(function (data) {
            throw new Error(data.detail || "The request failed (" + response.status + ").");
          });
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      var done = null;
      function handle(block) {
        var name = "message";
        var data = "";
        block.split("\n").forEach(function (line) {
          if (line.indexOf("event:") === 0) {
            name = line.slice(6).trim();
          } else if (line.indexOf("data:") === 0) {
            data += line.slice(5).trim();
          }
        });
        var payload = data ? JSON.parse(data) : {};
        if (name === "extractive") {
          quoted = payload;
          show(payload.answer, payload.sources);
        } else if (name === "delta") {
          written += payload.text;
          show(written, null);
        } else if (name === "fallback" && quoted) {
          show(quoted.answer, quoted.sources);
        } else if (name === "done") {
          done = payload;
        }
      }
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.value) {
            buffer += decoder.decode(chunk.value, { stream: true });
            var parts = buffer.split("\n\n");
            buffer = parts.pop();
            parts.forEach(handle);
          }
          if (!chunk.done) {
            return pump();
          }
          clear();
          if (!done) {
            throw new Error("The answer was cut off: ask again.");
          }
          return done;
        });
      }
      return pump().catch(function (error) {
        clear();
        throw error;
      });
    });
  }

  function ask(event) {
    event.preventDefault();
    if (busy) {
      return;
    }
    var text = input.value.trim();
    if (!text) {
      showError("Type a question first.");
      input.focus();
      return;
    }
    showError("");
    setBusy(true);
    var pending = addMessage("user", text);
    input.value = "";
    ensureConversation()
      .then(function (id) {
        return streamAnswer({ conversation_id: Number(id), message: text });
      })
      .then(function (data) {
        addMessage("assistant", data.answer, {
          id: data.message_id,
          sources: data.sources,
          seeAlso: data.see_also,
          refused: data.refused,
        });
        refreshConversations();
      })
      .catch(function (error) {
        pending.remove();
        input.value = text;
        showError(error.message);
      })
      .then(function () {
        setBusy(false);
        input.focus();
      });
  }

  function endConversation() {
    if (!conversationId) {
      return;
    }
    request("POST", "/chat/end", { conversation_id: Number(conversationId) }).then(
      function () {
        input.disabled = true;
        sendButton.disabled = true;
        endButton.hidden = true;
        var note = el("p", "muted", "This conversation has ended. Use “New conversation” to ask more.");
        form.appendChild(note);
      },
      function (error) {
        showError(error.message);
      }
    );
  }

  function loadHistory() {
    if (!conversationId) {
      return;
    }
    request("GET", "/chat/history?conversation_id=" + encodeURIComponent(conversationId)).then(
      function (data) {
        (data.messages || []).forEach(function (message) {
          addMessage(message.role, message.text, {
            id: message.id,
            sources: message.sources,
            seeAlso: message.see_also,
            refused: message.refused,
            feedback: message.feedback,
          });
        });
      },
      function (error) {
        showError(error.message);
      }
    );
  }

  function start() {
    app = document.getElementById("chat-app");
    if (!app) {
      return;
    }
    log = document.getElementById("chat-log");
    form = document.getElementById("chat-form");
    input = document.getElementById("chat-input");
    sendButton = document.getElementById("chat-send");
    typing = document.getElementById("chat-typing");
    errorBox = document.getElementById("chat-error");
    exportLink = document.getElementById("chat-export");
    endButton = document.getElementById("chat-end");
    emptyNote = document.getElementById("chat-empty");
    historyList = document.getElementById("chat-history");
    historyEmpty = document.getElementById("chat-history-empty");
    attachInput = document.getElementById("chat-attach-file");
    attachList = document.getElementById("chat-attachments");
    if (attachInput) {
      attachInput.addEventListener("change", attach);
    }
    conversationId = app.dataset.conversationId || "";
    showSources = app.dataset.showSources !== "false";
    form.addEventListener("submit", ask);
    input.addEventListener("keydown", function (event) {
      // Enter sends, Shift+Enter starts a new line (as in most chat tools).
      if (event.key === "Enter" && !event.shiftKey) {
        ask(event);
      }
    });
    endButton.addEventListener("click", endConversation);
    loadHistory();
    loadAttachments();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
