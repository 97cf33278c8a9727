// {{variable}} templates: rendering, whitespace, the names a text uses and
// the exact errors for unknown names and an unterminated "{{".
#include "provisioner/template.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace farmhand::provisioner {
namespace {

const std::map<std::string, std::string> kVars{
    {"container", "deb12"}, {"home", "/home/sai"}, {"source.sai.commit", "0123abcd"}, {"empty", ""}};

TEST(TemplateRender, ReplacesEveryPlaceholder) {
  auto out = render_template("name={{container}} dir={{home}}/x {{container}}", kVars);
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_EQ(*out, "name=deb12 dir=/home/sai/x deb12");
}

TEST(TemplateRender, WhitespaceInsideTheBracesIsAllowed) {
  auto out = render_template("{{ container }}|{{\tsource.sai.commit\n}}|{{  empty}}.", kVars);
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_EQ(*out, "deb12|0123abcd|.");
}

TEST(TemplateRender, TextWithoutPlaceholdersIsUnchanged) {
  for (const std::string& text : std::vector<std::string>{"", "plain text", "a { b } c }}", "{ {container} }",
                                                        std::string("nul\0byte", 8)}) {
    auto out = render_template(text, {});
    ASSERT_TRUE(out.ok()) << out.error().message();
    EXPECT_EQ(*out, text);
  }
}

TEST(TemplateRender, UnknownVariableIsAnErrorNamingIt) {
  auto out = render_template("ok {{container}} then {{ contianer }}", kVars);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().message(), "unknown template variable \"contianer\"");
}

TEST(TemplateRender, UnterminatedPlaceholderIsAnError) {
  auto out = render_template("{{container}} and {{home", kVars);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().message(), "unterminated {{ at offset 18");
}

TEST(TemplateRender, QuadrupleBracesAreNotAnEscape) {
  auto out = render_template("{{{{container}}}}", kVars);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().message(), "unknown template variable \"{{container\"");
}

TEST(TemplateVariables, NamesInOrderOfFirstUseEachOnce) {
  EXPECT_EQ(template_variables("{{home}} {{ container }} {{home}} {{source.a.path}}"),
            (std::vector<std::string>{"home", "container", "source.a.path"}));
  EXPECT_TRUE(template_variables("no placeholders }} here").empty());
  EXPECT_EQ(template_variables("{{user}} {{unterminated"), std::vector<std::string>{"user"});
}

TEST(TemplateVariables, SyntaxProblem) {
  EXPECT_EQ(template_syntax_problem("{{user}}"), std::nullopt);
  EXPECT_EQ(template_syntax_problem("ab{{user"), "unterminated {{ at offset 2");
}

TEST(TemplateVariables, KnownNamesIncludeTheContainersSources) {
  EXPECT_EQ(known_template_variables({}),
            (std::set<std::string>{"address", "container", "gateway", "home", "host", "hostname", "server_url",
                                   "subnet", "user"}));
  auto known = known_template_variables({"sai", "tools"});
  EXPECT_EQ(known.size(), 15u);
  for (const char* name : {"source.sai.path", "source.sai.commit", "source.sai.url", "source.tools.path",
                           "source.tools.commit", "source.tools.url"}) {
    EXPECT_TRUE(known.contains(name)) << name;
  }
  EXPECT_FALSE(known.contains("source.other.path"));
}

}  // namespace
}  // namespace farmhand::provisioner
