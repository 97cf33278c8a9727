#include "provisioner/step_journal.h"

namespace farmhand::provisioner {

Status StepJournal::run(const std::string& container, const std::string& what, const std::function<Status()>& body) {
  reporter_.step_started(container, what);
  const auto t0 = clock_.monotonic();
  std::optional<int64_t> entry;
  if (state_ != nullptr) {
    auto e = state_->journal_begin(apply_id_, container, what);
    if (!e) return e.error();
    entry = *e;
  }
  Status s = body();
  if (entry) (void)state_->journal_end(*entry, s.ok(), s.ok() ? "" : s.error().message());
  reporter_.step_finished(container, what,
                          std::chrono::duration_cast<std::chrono::milliseconds>(clock_.monotonic() - t0), s);
  return s;
}

void StepJournal::finished(const std::string& container, const std::string& what, std::chrono::milliseconds elapsed,
                           const Status& result) {
  if (state_ != nullptr) {
    auto entry = state_->journal_begin(apply_id_, container, what);
    if (entry) (void)state_->journal_end(*entry, result.ok(), result.ok() ? "" : result.error().message());
  }
  reporter_.step_finished(container, what, elapsed, result);
}

}  // namespace farmhand::provisioner
